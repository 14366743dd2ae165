"""One chunk of input (a pyarrow Table) checked against the model's input schema, column by column.

Rows whose values do not fit (not a number, not finite, null where required, out of range, not a whole
number, not true/false, not a date) are set aside with a reason; the reason is what the scoring service
says about the same value (schema.Column.check). The rest becomes what the score module takes: a typed
DataFrame (INPUT = "frame") or rows of plain values in schema order (INPUT = "rows").
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ml_service.serving.schema import FRAME_DTYPES, INTEGER_RANGE, NUMERIC, Column, Schema

FLOAT_RANGE = {"float": 3.4028234663852886e38}
BOOLEANS = {"true": True, "false": False, "1": True, "0": False}


@dataclass
class Checked:
    """A checked chunk: the columns of the rows that fit, and the rejected rows (index, reason)."""

    keep: np.ndarray
    values: dict = field(default_factory=dict)   # column name -> numpy array over all rows of the chunk
    rejects: dict = field(default_factory=dict)  # row index in the chunk -> reason (first bad column)

    @property
    def scored(self) -> int:
        """How many rows fit."""
        return int(self.keep.sum())


def _numbers(array: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(float64 values with NaN for null, a mask of values that are not numbers at all)."""
    if pa.types.is_string(array.type) or pa.types.is_large_string(array.type):
        try:
            return pc.cast(array, pa.float64()).to_numpy(zero_copy_only=False), np.zeros(len(array), bool)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            text = pd.Series(array.to_numpy(zero_copy_only=False), dtype=object)
            parsed = pd.to_numeric(text, errors="coerce").to_numpy(dtype="float64")
            return parsed, text.notna().to_numpy() & np.isnan(parsed)
    if pa.types.is_boolean(array.type) or not (pa.types.is_integer(array.type) or pa.types.is_floating(array.type)):
        return np.full(len(array), np.nan), array.is_valid().to_numpy(zero_copy_only=False)
    return pc.cast(array, pa.float64()).to_numpy(zero_copy_only=False), np.zeros(len(array), bool)


def _plain(array: pa.Array, i: int) -> object:
    """Value i of array as JSON-friendly Python: numbers read as float64 that are whole are shown whole (a CSV's
    `1` reads as 1.0 in a numeric column; the rejects file shows what the file held)."""
    value = array[i].as_py()
    if isinstance(value, float) and value.is_integer() and abs(value) <= 2 ** 53:
        return int(value)
    return value.isoformat() if hasattr(value, "isoformat") else value


def _check_column(column: Column, array: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(values as numpy, a mask of bad rows) for one column."""
    null = array.is_null().to_numpy(zero_copy_only=False)
    if column.type in NUMERIC:
        values, bad = _numbers(array)
        bad |= ~null & ~np.isfinite(values)
        if column.type in INTEGER_RANGE:
            low, high = INTEGER_RANGE[column.type]
            with np.errstate(invalid="ignore"):  # float64 rounds 2**63 - 1 up to 2**63: compare with the first
                # value past high, or 2**63 passes and wraps to -2**63 in the int64 column
                bad |= ~null & ((values != np.floor(values)) | (values < low) | (values >= float(high) + 1))
        elif column.type in FLOAT_RANGE:
            with np.errstate(invalid="ignore"):
                bad |= np.abs(values) > FLOAT_RANGE[column.type]
        return values, bad | (null & column.required)
    text = array.cast(pa.string()) if not pa.types.is_boolean(array.type) else array
    raw = text.to_numpy(zero_copy_only=False)
    if column.type == "boolean":
        if pa.types.is_boolean(array.type):
            values, bad = raw.astype(object), np.zeros(len(raw), bool)
        else:
            mapped = pd.Series(raw, dtype=object).str.lower().map(BOOLEANS)
            values, bad = mapped.to_numpy(dtype=object), ~null & mapped.isna().to_numpy()
    elif column.type == "datetime":
        parsed = pd.to_datetime(pd.Series(raw, dtype=object), format="ISO8601", errors="coerce")
        values, bad = parsed.to_numpy(), ~null & parsed.isna().to_numpy()
    else:
        values, bad = raw.astype(object), np.zeros(len(raw), bool)
    return values, bad | (null & column.required)


def check(table: pa.Table, schema: Schema) -> Checked:
    """Check every row of table against schema (untyped: every column a required double)."""
    columns = schema.columns or tuple(Column(name) for name in table.column_names)
    checked = Checked(keep=np.ones(table.num_rows, bool))
    for column in columns:
        if column.name in table.column_names:
            array = table.column(column.name).combine_chunks()
        else:
            array = pa.nulls(table.num_rows, pa.string())
        values, bad = _check_column(column, array)
        checked.values[column.name] = values
        for i in np.flatnonzero(bad & checked.keep):
            value = _plain(array, int(i))
            if column.type in NUMERIC and isinstance(value, str) and not np.isnan(values[i]):
                value = float(values[i])
            problem = column.check(value) or f"is not a valid {column.type}: {value!r}"
            checked.rejects[int(i)] = f"column {column.name!r} {problem}"
        checked.keep &= ~bad
    return checked


def frame(checked: Checked, schema: Schema) -> pd.DataFrame:
    """The rows that fit as a DataFrame with the schema's columns and dtypes (as the scoring service builds it)."""
    keep, data = checked.keep, {}
    for name, values in checked.values.items():
        kind = schema.columns[schema._index[name]].type if schema.columns else "double"
        values = values[keep]
        if kind in FRAME_DTYPES:
            has_null = kind in INTEGER_RANGE and np.isnan(values).any()
            values = values.astype("float64" if has_null else FRAME_DTYPES[kind], copy=False)
        elif kind == "boolean" and not pd.isna(values).any():
            values = values.astype(bool)
        elif kind in ("string", "binary"):
            values = pd.Series(np.where(pd.isna(values), None, values), dtype=object)
        data[name] = values
    return pd.DataFrame(data, copy=False)


def rows(data: pd.DataFrame) -> list[list]:
    """A frame as rows of plain Python values in column order, None for missing (INPUT = "rows")."""
    if all(dtype.kind in "fi" for dtype in data.dtypes) and not data.isna().to_numpy().any():
        return data.to_numpy(dtype="float64").tolist() if any(d.kind == "f" for d in data.dtypes) \
            else data.to_numpy().tolist()
    return data.astype(object).where(data.notna(), None).to_numpy().tolist()


def reject_values(table: pa.Table, i: int) -> str:
    """Row i of table as JSON (its values as read), for the rejects file."""
    return json.dumps({name: _plain(table.column(name), i) for name in table.column_names}, default=str)
