"""What a score module's run() returned, as JSON-safe predictions: one a row, finite, labels or numbers.

A non-finite prediction (NaN, infinity) is never sent: JSON has no such value. The inputs were checked finite
before run() saw them, so a non-finite prediction means the row's values are outside what the model can
score (e.g. values near 1.7e308 that overflow a linear model): a 422 naming the row, not a 500.
"""
from __future__ import annotations

import math

from ml_service.serving.errors import HTTPError


def _plain(values: object) -> list:
    """A list from what run() returned: numpy arrays, pandas Series or one-column frames, tuples."""
    if type(values) is list:
        return values
    if hasattr(values, "to_numpy"):  # pandas
        values = values.to_numpy()
    if getattr(values, "ndim", 1) == 2 and values.shape[1] == 1:  # a [rows, 1] array: one value a row
        values = values[:, 0]
    if hasattr(values, "tolist"):
        return values.tolist()
    if isinstance(values, (str, bytes, dict)) or not hasattr(values, "__iter__"):
        raise RuntimeError(f"run() returned a {type(values).__name__}, not one prediction a row")
    return list(values)


def _not_finite(row: int) -> HTTPError:
    return HTTPError(422, f"the model's prediction for row {row} is not finite: its values are outside the range "
                          "this model can score")


def _value(value: object, row: int) -> object:
    """One prediction as a JSON value: a finite number, a string or boolean label, or a list of numbers."""
    kind = type(value)
    if kind is float:
        if not math.isfinite(value):
            raise _not_finite(row)
        return value
    if kind is int or kind is str or kind is bool:
        return value
    if value is None:
        raise HTTPError(500, "model returned a null prediction")
    if hasattr(value, "item") and getattr(value, "ndim", 0) == 0:  # a numpy scalar
        return _value(value.item(), row)
    if isinstance(value, (list, tuple)) or hasattr(value, "tolist"):
        return [_value(v, row) for v in _plain(value)]
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    raise RuntimeError(f"run() returned a prediction of type {kind.__name__}")


def _values(values: list, row: int | None = None) -> list:
    """values as JSON values: one a row (row None), or the values of one row."""
    for i, value in enumerate(values):
        kind = type(value)
        if kind is float:
            if not math.isfinite(value):
                raise _not_finite(i if row is None else row)
        elif kind is not str and kind is not int and kind is not bool:
            return values[:i] + [_value(v, i + k if row is None else row) for k, v in enumerate(values[i:])]
    return values


def predictions(result: object, n_rows: int) -> dict:
    """What run() returned as the JSON response: {"result": [...]}, plus probabilities and classes if given."""
    extra = {}
    if isinstance(result, dict):
        if "result" not in result:
            raise RuntimeError(f"run() returned a dict without 'result' (keys: {', '.join(map(str, result))})")
        if result.get("probabilities") is not None:
            probabilities = [_values(_plain(row), i) for i, row in enumerate(_plain(result["probabilities"]))]
            if len(probabilities) != n_rows:
                raise RuntimeError(f"run() returned {len(probabilities)} probability rows for {n_rows} rows")
            extra["probabilities"] = probabilities
        if result.get("classes") is not None:
            extra["classes"] = _values(_plain(result["classes"]), 0)
        result = result["result"]
    values = _values(_plain(result))
    if len(values) != n_rows:
        raise RuntimeError(f"run() returned {len(values)} predictions for {n_rows} rows")
    return {"result": values, **extra}
