"""The register step: log the promoted candidate as an MLflow sklearn model and register it.

The model's signature is inferred from all the data's features as pandas reads the file: whole-number
columns without gaps stay integers (long), so `mlflow.pyfunc.load_model(uri).predict(the CSV file)` works.
A column the pipeline imputes may be null (the scoring service and batch accept null there); any other
is required. The platform registers the
model and moves `champion` as a compare-and-set against the champion the evaluate step compared with.
"""
from __future__ import annotations

import json
import pickle
from pathlib import Path

import pandas as pd
import yaml

from breast_cancer_classification.evaluate.evaluate_model import rescorer
from breast_cancer_classification.training.features import TARGET, model_input
from ml_service.workspace import promotion


def signature_frame(data: pd.DataFrame) -> pd.DataFrame:
    """The features as the scoring service should accept them: numbers as the file holds them (whole numbers
    without gaps as integers, others as floats), text and boolean columns as they are."""
    return model_input(data)


def imputed_columns(model) -> set[str]:
    """The input columns whose missing values the fitted pipeline fills in (an imputer in their transformer)."""
    preprocess = getattr(model, "named_steps", {}).get("preprocess")
    found = set()
    for _, transformer, columns in getattr(preprocess, "transformers_", []):
        steps = [step for _, step in getattr(transformer, "steps", [(None, transformer)])]
        if any("Imputer" in type(step).__name__ for step in steps) and isinstance(columns, list):
            found.update(columns)
    return found


def model_signature(model, sample: pd.DataFrame):
    """The signature inferred from sample, with null allowed exactly in the columns the model imputes."""
    from mlflow.models import infer_signature
    from mlflow.models.signature import ModelSignature
    from mlflow.types.schema import ColSpec, Schema

    inferred = infer_signature(sample, model.predict(sample))
    imputed = imputed_columns(model)
    inputs = Schema([ColSpec(spec.type, spec.name, required=spec.name not in imputed)
                     for spec in inferred.inputs.inputs])
    return ModelSignature(inputs, inferred.outputs)


def log_model(model_dir: Path, sample: pd.DataFrame) -> str:
    """Log model.pkl as an MLflow sklearn model with its input signature; return the model URI."""
    import mlflow.sklearn
    import sklearn

    with open(model_dir / "model.pkl", "rb") as handle:
        model = pickle.load(handle)
    signature = model_signature(model, sample)
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
