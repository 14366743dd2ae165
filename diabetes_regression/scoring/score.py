"""The scoring contract: init() loads the model once; run(data) returns predictions.

The model directory comes from MODEL_DIR (an MLflow model folder, or a folder holding model.pkl),
or a registry URI such as models:/diabetes_regression_model@production (needs MLflow). The
scoring service wraps this module; it never writes HTTP code. It validates every request against
the model's signature first and, since INPUT = "rows", hands run() plain lists in schema order:
a linear model then scores small batches without numpy or pandas at all.
"""
from __future__ import annotations

import math
import operator
import os
import pickle
from pathlib import Path

import yaml

INPUT = "rows"
BATCH_INPUT = "frame"  # a batch job's chunks (hundreds of thousands of rows): one array, not a list a row
N_FEATURES = 10
FEATURES = ["AGE", "SEX", "BMI", "BP", "S1", "S2", "S3", "S4", "S5", "S6"]

_model = None
_linear = None  # (coefficients, intercept) when the model is linear: a faster exact path for small batches
SMALL_BATCH = 64


class ScoringError(ValueError):
    """The request data is not something this model can score; the message says why."""


def _model_file(model_dir: Path) -> Path:
    mlmodel = model_dir / "MLmodel"
    if mlmodel.is_file():
        flavors = (yaml.safe_load(mlmodel.read_text()) or {}).get("flavors", {})
        sklearn = flavors.get("sklearn")
        if not sklearn:
            raise RuntimeError(f"{mlmodel}: no sklearn flavor (found: {', '.join(flavors) or 'none'})")
        if sklearn.get("serialization_format", "pickle") != "pickle":
            raise RuntimeError(f"{mlmodel}: serialization {sklearn['serialization_format']!r} is not supported")
        return model_dir / sklearn.get("pickled_model", "model.pkl")
    return model_dir / "model.pkl"


def _resolve(model_dir: str) -> Path:
    if model_dir.startswith(("models:/", "runs:/")):
        import mlflow.artifacts

        return Path(mlflow.artifacts.download_artifacts(model_dir))
    return Path(model_dir)


def load_model(model_dir: str | os.PathLike):
    """The scikit-learn model stored in model_dir (an MLflow sklearn model folder, or model.pkl)."""
    path = _model_file(Path(model_dir))
    try:
        with open(path, "rb") as handle:
            model = pickle.load(handle)
    except FileNotFoundError:
        raise RuntimeError(f"model file not found: {path}") from None
    except (pickle.UnpicklingError, EOFError, AttributeError, ImportError, ValueError) as exc:
        raise RuntimeError(f"model file {path} is corrupt or incompatible: {exc}") from None
    if not hasattr(model, "predict"):
        raise RuntimeError(f"model file {path} holds a {type(model).__name__}, which has no predict()")
    return model


def init(model_dir: str | os.PathLike | None = None) -> None:
    """Load the model once, from model_dir or $MODEL_DIR. Raises a clear error when it cannot."""
    global _model, _linear
    source = str(model_dir or os.environ.get("MODEL_DIR", ""))
    if not source:
        raise RuntimeError("no model: set MODEL_DIR to a model folder or a models:/ URI")
    model = load_model(_resolve(source))
    _model = model
    coef, intercept = getattr(model, "coef_", None), getattr(model, "intercept_", None)
    if coef is not None and getattr(coef, "ndim", 0) == 1 and len(coef) == N_FEATURES and intercept is not None:
        _linear = ([float(c) for c in coef], float(intercept))
    else:
        _linear = None


def check_rows(data) -> list[list[float]]:
    """Validate a batch: a non-empty list of rows of 10 finite numbers."""
    if not isinstance(data, list) or not data:
        raise ScoringError("'data' must be a non-empty list of rows")
    for i, row in enumerate(data):
        if type(row) is not list or len(row) != N_FEATURES:
            raise ScoringError(f"row {i} must be a list of {N_FEATURES} numbers ({', '.join(FEATURES)})")
        for j, value in enumerate(row):
            if type(value) is not float and type(value) is not int:  # bool is not a number here
                raise ScoringError(f"row {i}, column {j} ({FEATURES[j]}) is not a number: {value!r}")
        if not math.isfinite(sum(row)):
            for j, value in enumerate(row):
                if not math.isfinite(value):
                    raise ScoringError(f"row {i}, column {j} ({FEATURES[j]}) is not finite: {value!r}")
    return data


def check_frame(frame):
    """Validate a batch job's chunk (a DataFrame): 10 columns of finite numbers; its values as a float64 array."""
    import numpy as np

    if frame.shape[1] != N_FEATURES:
        raise ScoringError(f"the frame must have {N_FEATURES} columns ({', '.join(FEATURES)}), got {frame.shape[1]}")
    try:
        values = np.ascontiguousarray(frame.to_numpy(dtype="float64"))  # row-major, as sklearn makes a list of rows
    except (TypeError, ValueError):
        raise ScoringError("every column must hold numbers") from None
    if not np.isfinite(values).all():
        i, j = (int(k[0]) for k in np.nonzero(~np.isfinite(values)))
        raise ScoringError(f"row {i}, column {j} ({FEATURES[j]}) is not finite: {values[i, j]!r}")
    return values


def run(data) -> list[float]:
    """Predict Y for each row of data (a list of rows of 10 numbers, or a batch job's DataFrame: BATCH_INPUT)."""
    if _model is None:
        raise RuntimeError("init() has not loaded a model")
    if hasattr(data, "to_numpy"):
        values = check_frame(data)
        if _linear is None or len(values) > SMALL_BATCH:
            return _model.predict(values)  # what predict(rows) gives: sklearn makes this array of the rows
        data = values.tolist()  # a small chunk: the exact path requests take
    rows = check_rows(data)
    if _linear is not None and len(rows) <= SMALL_BATCH:
        coef, intercept = _linear
        return [sum(map(operator.mul, coef, row)) + intercept for row in rows]
    return [float(y) for y in _model.predict(rows)]
