"""The scoring contract: init() loads the model once; run(frame) returns predictions.

The model directory comes from MODEL_DIR (an MLflow model folder, or a folder holding model.pkl), or a
registry URI such as models:/NAME@production (needs MLflow). The scoring service validates
every request against the model's signature and, since INPUT = "frame", hands run() a pandas DataFrame
with the signature's columns and dtypes. Nulls are missing values, which the model imputes; a category
never seen in training is ignored. It never writes HTTP code.

run() returns {"result": one label per row, "probabilities": one row of class probabilities per row,
"classes": the label of each probability column}.
"""
from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

INPUT = "frame"

_model = None


class ScoringError(ValueError):
    """The data is not something this model can score; the message says why."""


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


def _resolve(source: str) -> Path:
    if source.startswith(("models:/", "runs:/")):
        import mlflow.artifacts

        return Path(mlflow.artifacts.download_artifacts(source))
    return Path(source)


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
    global _model
    source = str(model_dir or os.environ.get("MODEL_DIR", ""))
    if not source:
        raise RuntimeError("no model: set MODEL_DIR to a model folder or a models:/ URI")
    _model = load_model(_resolve(source))


def as_frame(data) -> pd.DataFrame:
    """data (a DataFrame, or a list of records) as the model's input: its columns in order, text and
    boolean columns as Python objects with missing values as NaN."""
    if _model is None:
        raise RuntimeError("init() has not loaded a model")
    frame = data if isinstance(data, pd.DataFrame) else pd.DataFrame.from_records(list(data))
    if frame.empty:
        raise ScoringError("no rows to score")
    columns = list(getattr(_model, "feature_names_in_", frame.columns))
    missing = [column for column in columns if column not in frame.columns]
    if missing:
        raise ScoringError(f"missing column(s): {', '.join(map(repr, missing))}")
    frame = frame[columns].copy()
    for column in columns:
        series = frame[column]
        if pd.api.types.is_bool_dtype(series) or not pd.api.types.is_numeric_dtype(series):
            frame[column] = series.astype(object).where(series.notna(), np.nan)
    return frame


def run(data) -> dict:
    """Predict a label and the probability of each class for each row of data (a DataFrame, or records)."""
    frame = as_frame(data)
    labels = _model.predict(frame)
    probabilities = _model.predict_proba(frame)
    return {"result": labels.tolist(), "probabilities": probabilities.tolist(), "classes": _model.classes_.tolist()}
