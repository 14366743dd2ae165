"""The register step: log the promoted candidate as an MLflow sklearn model and register it.

The model's signature is inferred from all the data's features, nulls included, so the scoring
service knows each column's name, type and whether it may be null. The platform registers the
model and moves `champion` as a compare-and-set against the champion the evaluate step compared with.
"""
from __future__ import annotations

import json
import pickle
from pathlib import Path

import pandas as pd
import yaml

from breast_cancer_classification.evaluate.evaluate_model import rescorer
from breast_cancer_classification.training.features import NUMERIC, TARGET, model_input
from ml_service.workspace import promotion


def signature_frame(data: pd.DataFrame) -> pd.DataFrame:
    """The features as the scoring service should accept them: numeric columns as float64 (null allowed
    where the data has nulls), text and boolean columns as they are."""
    frame = model_input(data)
    return frame.astype({column: "float64" for column in NUMERIC})


def log_model(model_dir: Path, sample: pd.DataFrame) -> str:
    """Log model.pkl as an MLflow sklearn model with its input signature; return the model URI."""
    import mlflow.sklearn
    import sklearn
    from mlflow.models import infer_signature

    with open(model_dir / "model.pkl", "rb") as handle:
        model = pickle.load(handle)
    signature = infer_signature(sample, model.predict(sample))
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
    sample = signature_frame(pd.read_csv(inputs["data"]))
    decision = json.loads((inputs["evaluate"] / "decision.json").read_text())
    return promotion.register_candidate(
        context,
        log_model=lambda: log_model(inputs["train"], sample),
        metric=metric,
        candidate_value=json.loads((inputs["train"] / "metrics.json").read_text())[metric],
        decided_against=decision.get("champion_version") or None,
        rescore=rescorer(test, metric, target),
        higher_is_better=promotion.direction(evaluation),
        min_improvement=float(evaluation.get("min_improvement", 0.0)),
        project_tags=config.get("registration", {}).get("tags", {}),
        reason=decision.get("reason", ""),
    )
