"""Which columns of a table are not features: a row index without a name (what pandas `to_csv()` and R's
`write.csv` write first), and identifiers (a name such as id, rownames, uuid or customer_id; text unique or
nearly unique per row; whole numbers unique per row or counting the rows). They stay in the data file and
its contract's column list, but the model never sees them, so clients never send them.

`--keep COL` makes an excluded column a feature again, `--drop COL` excludes any other. A kept feature that
follows the file's row order (a sorted file) is worth a warning: it may leak whatever the file is sorted by.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from ml_service.init import InitError

UNNAMED = re.compile(r"^Unnamed: 0$")      # how pandas names an empty first header field
ID_NAMES = {"id", "rownames", "rowname", "row_names", "rownum", "row_number", "rowid", "index", "uuid", "guid",
            "record_id", "row"}
ID_TOKENS = {"id", "uuid", "guid"}         # ... as the last word of a name: customer_id, CustomerID, order uuid
NEARLY_UNIQUE = 0.95                       # text with at least this share of distinct values per row
MIN_ROWS_UNIQUE_NUMBERS = 100              # whole numbers all distinct mark an identifier from this many rows
ROW_ORDER = 0.9                            # |rank correlation| with the row position that counts as "follows it"
MANY_VALUES = 20                           # a feature with more distinct values than this can number rows


@dataclass(frozen=True)
class Excluded:
    """A column that is not a feature, and why."""

    name: str
    reason: str


def _words(name: str) -> list[str]:
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", name)
    return [w.lower() for w in re.split(r"[^A-Za-z0-9]+", spaced) if w]


def id_like_name(name: str) -> bool:
    """True for names such as id, rownames, uuid, customer_id, CustomerID, 'order id'."""
    words = _words(name)
    return bool(words) and ("_".join(words) in ID_NAMES or "".join(words) in ID_NAMES or words[-1] in ID_TOKENS)


def _counts_rows(values) -> bool:
    """Whole numbers that rise (or fall) by the same step on every row: a row number."""
    import numpy as np

    steps = np.diff(values.to_numpy(dtype=float))
    return len(steps) > 0 and steps[0] != 0 and bool(np.all(steps == steps[0]))


def why_identifier(name: str, series, unnamed_first: bool) -> str | None:
    """Why the column is a row index or an identifier, or None when it may be a feature."""
    import pandas as pd

    values = series.dropna()
    rows, distinct = len(series), int(values.nunique())
    whole = pd.api.types.is_integer_dtype(series) or (
        pd.api.types.is_float_dtype(series) and len(values) and bool((values % 1 == 0).all()))
    if unnamed_first and UNNAMED.match(name):
        if distinct == rows:
            return "no name and a distinct value on every row: a row index (as pandas to_csv() or R write it)"
        raise InitError(f"the first column has no name in the header line and repeats values ({distinct} distinct "
                        f"in {rows} rows), so it is not a row index: give it a name, or remove it")
    if id_like_name(name):
        return f"its name marks an identifier ({distinct} distinct values in {rows} rows)"
    if pd.api.types.is_bool_dtype(series) or not len(values):
        return None
    if whole and _counts_rows(values) and len(values) == rows:
        return "whole numbers that count the rows (a row number)"
    if not pd.api.types.is_numeric_dtype(series) and distinct >= NEARLY_UNIQUE * rows:
        return f"text with a distinct value on almost every row ({distinct} in {rows}): an identifier or free text"
    if whole and distinct == rows >= MIN_ROWS_UNIQUE_NUMBERS:
        return f"whole numbers with a distinct value on every row ({distinct}): an identifier"
    return None


def excluded_columns(frame, target: str, unnamed_first: bool, keep: list[str], drop: list[str]) -> list[Excluded]:
    """The columns of frame that are not features, with why; keep and drop (column names) override."""
    names = [str(c) for c in frame.columns]
    for option, given in (("--keep", keep), ("--drop", drop)):
        unknown = [c for c in given if c not in names]
        if unknown:
            raise InitError(f"{option} {', '.join(map(repr, unknown))}: no such column; the columns are: "
                            f"{', '.join(map(repr, names))}")
    if target in drop:
        raise InitError(f"--drop {target!r}: that is the target")
    both = sorted(set(keep) & set(drop))
    if both:
        raise InitError(f"column(s) {', '.join(map(repr, both))} given to both --keep and --drop")
    found = []
    for name in names:
        if name == target or name in keep:
            continue
        reason = "--drop" if name in drop else why_identifier(name, frame[name], unnamed_first and name == names[0])
        if reason:
            found.append(Excluded(name, reason))
    if len(found) >= len(names) - 1:
        raise InitError(f"no feature columns are left: {', '.join(e.name for e in found)} look like identifiers; "
                        "keep the ones that are features with --keep COLUMN")
    return found


def _order_correlation(series) -> float:
    """Spearman's rank correlation of series (nulls left out; text as its category codes) with the row order."""
    import numpy as np
    import pandas as pd

    values = series.dropna()
    if len(values) < 3 or values.nunique() < 2:
        return 0.0
    if not pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
        values = values.astype(str).astype("category").cat.codes
    ranks = values.rank().to_numpy(dtype=float)
    position = np.arange(len(series))[series.notna().to_numpy()].astype(float)
    correlation = np.corrcoef(ranks, position)[0, 1]
    return 0.0 if np.isnan(correlation) else float(correlation)


def sort_warnings(frame, target: str, features: list[str]) -> list[str]:
    """A warning for each numeric feature with many values that follows the file's row order."""
    import pandas as pd

    target_order = _order_correlation(frame[target])
    warnings = []
    for name in features:
        series = frame[name]
        if not pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series) or \
                series.nunique() <= MANY_VALUES:
            continue
        rho = _order_correlation(series)
        if abs(rho) >= ROW_ORDER:
            also = (f"; the target follows it too (rho {target_order:+.2f}): the feature may leak what the file "
                    "is sorted by" if abs(target_order) >= 0.3 else "")
            warnings.append(f"{name!r} follows the file's row order (rank correlation {rho:+.2f}){also}; "
                            f"if it only numbers the rows, init again with --drop {name!r}")
    return warnings
