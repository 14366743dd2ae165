"""The register step: log the promoted candidate as an MLflow sklearn model and register it.

The platform registers it and moves `champion` as a compare-and-set against the champion the
evaluate step compared with (re-scoring the candidate against a newer champion if one appeared).
"""
from __future__ import annotations

import json
import pickle
from pathlib import Path

import pandas as pd
import yaml

from diabetes_regression.evaluate.evaluate_model import rescorer
from diabetes_regression.training.train import FEATURES, TARGET
from ml_service.workspace import promotion


def log_model(model_dir: Path, sample: pd.DataFrame) -> str:
    """Log model.pkl as an MLflow sklearn model with its input signature; return the model URI."""
    import mlflow.sklearn
    import sklearn
    from mlflow.models import infer_signature

    with open(model_dir / "model.pkl", "rb") as handle:
        model = pickle.load(handle)
    signature = infer_signature(sample, model.predict(sample.to_numpy(dtype=float)))
    info = mlflow.sklearn.log_model(model, name="model", serialization_format="pickle", signature=signature,
                                    pip_requirements=[f"scikit-learn=={sklearn.__version__}"])
    return info.model_uri


def run(inputs: dict[str, Path], params: dict, output_dir: Path, context: dict) -> dict:
    """Register the trained model (runs only when evaluate promoted it)."""
    config = yaml.safe_load(inputs["parameters"].read_text())
    evaluation = config["evaluation"]
    metric = evaluation["metric"]
    target = context.get("target") or TARGET
    test = pd.read_csv(inputs["train"] / "test.csv")
    decision = json.loads((inputs["evaluate"] / "decision.json").read_text())
    return promotion.register_candidate(
        context,
        log_model=lambda: log_model(inputs["train"], test[FEATURES]),
        metric=metric,
        candidate_value=json.loads((inputs["train"] / "metrics.json").read_text())[metric],
        decided_against=decision.get("champion_version") or None,
        rescore=rescorer(test, metric, target),
        higher_is_better=promotion.direction(evaluation),
        min_improvement=float(evaluation.get("min_improvement", 0.0)),
        project_tags=config.get("registration", {}).get("tags", {}),
        reason=decision.get("reason", ""),
    )
