"""The rows a trial may see: the project's data less the rows its train step holds out for the test split.

Promotion compares a candidate with the champion on the candidate's own test split. If trials were scored on
those rows, the study would pick the parameters that suit them best and the tuned candidate would look better
than it is. So the study first runs the train step once as the pipeline would (its own split), reads the
held-out rows it wrote (`test.csv`, the rows evaluate re-scores the champion on), and gives every trial the
data without them: the train step then splits that again, and its test split there is the trial's validation
set. The held-out rows are matched by value on the columns `test.csv` has (counting duplicates).
"""
from __future__ import annotations

from pathlib import Path

from ml_service.tune import TuneError

HELD_OUT = "test.csv"


def _keys(frame, columns: list[str]):
    """Each row as a tuple of comparable values (numbers as floats, missing values as one marker)."""
    import pandas as pd

    keyed = pd.DataFrame(index=frame.index)
    for column in columns:
        series = frame[column]
        if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
            keyed[column] = series.astype("float64").map(lambda v: "<missing>" if pd.isna(v) else repr(float(v)))
        else:
            keyed[column] = series.map(lambda v: "<missing>" if pd.isna(v) else str(v))
    return keyed.apply(tuple, axis=1) if columns else pd.Series([()] * len(frame), index=frame.index)


def without_held_out(data: Path, held_out: Path, target: Path) -> dict:
    """Write data's rows less held_out's (matched on held_out's columns) to target; the counts."""
    import pandas as pd

    if not held_out.is_file():
        raise TuneError(f"the train step wrote no {HELD_OUT} (its held-out rows): tuning needs it so that no trial "
                        "sees the rows promotion tests on")
    frame, test = pd.read_csv(data), pd.read_csv(held_out)
    columns = [c for c in test.columns if c in frame.columns]
    if not columns:
        raise TuneError(f"{held_out}: none of its columns is in {data}")
    remaining = _keys(test, columns).value_counts().to_dict()
    keep = []
    for key in _keys(frame, columns):
        if remaining.get(key, 0) > 0:
            remaining[key] -= 1
            keep.append(False)
        else:
            keep.append(True)
    missing = sum(remaining.values())
    if missing:
        raise TuneError(f"{missing} held-out row(s) of the train step are not in {data}; the step must hold out rows "
                        "of its data as they are")
    kept = frame[keep]
    target.parent.mkdir(parents=True, exist_ok=True)
    kept.to_csv(target, index=False)
    return {"rows": len(frame), "held_out": len(frame) - len(kept), "tuning_rows": len(kept)}
