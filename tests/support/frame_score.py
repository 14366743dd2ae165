"""A score module that takes a frame (INPUT = "frame"): a classifier with a text column and missing values.

Also builds the model it serves: save_classifier() writes a scikit-learn pipeline (imputer, one-hot
encoder, logistic regression) with an MLmodel signature (optional columns among them) and an input
example in MLflow's split form.
"""
import json
import pickle
from pathlib import Path

from tests.support.rows_score import mlmodel

INPUT = "frame"
CLASSES = None
SIGNATURE = [{"type": "double", "name": "radius", "required": True},
             {"type": "double", "name": "texture", "required": False},
             {"type": "string", "name": "grade", "required": False},
             {"type": "long", "name": "count", "required": True},
             {"type": "boolean", "name": "smooth", "required": True}]
EXAMPLE = {"columns": ["radius", "texture", "grade", "count", "smooth"],
           "data": [[14.2, 20.1, "low", 3, True], [21.5, float("nan"), None, 9, False]]}

_model = None


def init(model_dir):
    global _model, CLASSES
    _model = pickle.loads((Path(model_dir) / "model.pkl").read_bytes())
    CLASSES = [str(c) for c in _model.classes_]


def run(frame):
    return {"result": _model.predict(frame), "probabilities": _model.predict_proba(frame), "classes": CLASSES}


def text(frame):
    """The text columns with missing values as a category of their own (a picklable transformer)."""
    return frame.astype(object).where(frame.notna(), "missing").astype(str)


def save_classifier(path: Path) -> Path:
    """The classifier saved in path (model.pkl, MLmodel with signature, input_example.json)."""
    import numpy as np
    import pandas as pd
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer, OneHotEncoder

    rng = np.random.default_rng(1)
    n = 200
    radius = rng.normal(15, 4, n)
    frame = pd.DataFrame({
        "radius": radius,
        "texture": np.where(rng.random(n) < 0.2, np.nan, rng.normal(20, 3, n)),
        "grade": pd.Series(rng.choice(["low", "mid", "high", None], n), dtype=object),
        "count": rng.integers(0, 12, n),
        "smooth": rng.random(n) < 0.5,
    })
    labels = np.where(radius + (frame["grade"] == "high") * 3 > 16, "malignant", "benign")
    features = ColumnTransformer([
        ("numbers", SimpleImputer(), ["radius", "texture", "count"]),
        ("text", make_pipeline(FunctionTransformer(text), OneHotEncoder(handle_unknown="ignore")), ["grade"]),
        ("flags", "passthrough", ["smooth"]),
    ])
    model = make_pipeline(features, LogisticRegression(max_iter=1000)).fit(frame, labels)
    path.mkdir(parents=True, exist_ok=True)
    (path / "model.pkl").write_bytes(pickle.dumps(model))
    (path / "MLmodel").write_text(mlmodel(SIGNATURE, output="str") + "saved_input_example_info:\n  artifact_path: "
                                  "input_example.json\n  pandas_orient: split\n  type: dataframe\n")
    (path / "input_example.json").write_text(json.dumps(EXAMPLE))
    return path
