"""The data contract `mlops init` writes: a Great Expectations suite (JSON) profiled from the data.

It pins what the data looked like, for a person to review: the ordered column list, a lower bound on
the row count, and per column: not null (when the sample has no nulls; always for the target),
numeric type and range (the observed range widened by MARGIN of its span on both sides, never below
zero for a column without negative values), or the value set of a text or boolean column. The
expectation types are those `ml_service.data.contract` runs (see any suite under data/contract/).
"""
from __future__ import annotations

import math

from ml_service.init.profile import ColumnProfile, Profile

MARGIN = 0.10
NUMERIC_TYPES = ["float64", "int64"]


def _expectation(kind: str, **kwargs) -> dict:
    return {"type": f"expect_{kind}", "kwargs": kwargs}


def _nice(value: float, step: float, up: bool) -> float | int:
    """value rounded outwards to a multiple of step (a power of ten), as an int when step >= 1."""
    scaled = math.ceil(value / step - 1e-9) if up else math.floor(value / step + 1e-9)
    if step >= 1:
        return int(scaled * step)
    return round(scaled * step, max(0, -int(math.floor(math.log10(step)))))


def numeric_bounds(column: ColumnProfile) -> tuple[float | int, float | int]:
    """The range a numeric column is allowed: observed, widened by MARGIN of the span, rounded outwards
    (whole numbers with a span under 10: exactly the observed range)."""
    low, high = column.minimum, column.maximum
    span = high - low
    margin = span * MARGIN if span > 0 else (abs(low) * MARGIN or 1.0)
    if column.integer and span > 0 and margin < 1:  # a few whole numbers (0/1, 1-5) widen by none: 0/1 stays 0-1
        return int(low), int(high)
    lower, upper = low - margin, high + margin
    if low >= 0:
        lower = max(lower, 0.0)
    step = 10.0 ** (math.floor(math.log10(upper - lower)) - 2)
    if column.integer:
        step = max(step, 1.0)
    return _nice(lower, step, up=False), _nice(upper, step, up=True)


def column_expectations(column: ColumnProfile, required: bool) -> list[dict]:
    """The expectations of one column."""
    found = []
    if required or column.nulls == 0:
        found.append(_expectation("column_values_to_not_be_null", column=column.name))
    if column.kind == "numeric":
        low, high = numeric_bounds(column)
        found.append(_expectation("column_values_to_be_in_type_list", column=column.name, type_list=NUMERIC_TYPES))
        found.append(_expectation("column_values_to_be_between", column=column.name, min_value=low, max_value=high))
    elif column.categories:
        found.append(_expectation("column_values_to_be_in_set", column=column.name,
                                  value_set=list(column.categories)))
    return found


def build_suite(profile: Profile, dataset: str, source: str) -> dict:
    """The suite for profile's data, named after the data set."""
    min_rows = min(profile.rows, max(20, profile.rows // 2))
    expectations = [
        _expectation("table_columns_to_match_ordered_list", column_list=[c.name for c in profile.columns]),
        _expectation("table_row_count_to_be_between", min_value=min_rows, max_value=None),
    ]
    for column in profile.columns:
        if column.name not in profile.excluded_names:  # a row index or identifier: new values are expected
            expectations += column_expectations(column, required=column.name == profile.target)
    unpinned = [c.name for c in profile.features if c.kind == "categorical" and not c.categories]
    description = (f"Data contract for {source}, profiled by `mlops init` from {profile.rows} rows: columns, "
                   f"completeness, ranges (observed +/- {MARGIN:.0%} of the span) and category sets. "
                   "Review it: tighten ranges you know, loosen what may legitimately change.")
    meta = {"description": description, "target": profile.target, "task": profile.task}
    if profile.excluded:
        meta["not_features"] = {e.name: e.reason for e in profile.excluded}
    if unpinned:
        meta["not_pinned"] = f"text columns with too many distinct values for a value set: {', '.join(unpinned)}"
    return {"name": f"{dataset}_data_contract", "meta": meta, "expectations": expectations}
