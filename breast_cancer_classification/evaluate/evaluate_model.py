"""The evaluate step: the candidate against the champion re-scored on the candidate's own test split.

The promotion rule itself (strictly better, direction, min_improvement) is the platform's
(`ml_service.workspace.promotion`); this project only says how to measure a model.
"""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import yaml

from breast_cancer_classification.scoring.score import load_model
from breast_cancer_classification.training.features import TARGET, features_and_target
from breast_cancer_classification.training.train import metrics_of
from ml_service.workspace import promotion


def rescorer(test: pd.DataFrame, metric: str, target: str = TARGET):
    """A function model_dir -> metric of the model stored there, on the rows of test."""
    x, y = features_and_target(test, target)

    def rescore(model_dir: Path) -> float:
        return metrics_of(load_model(model_dir), x, y)[metric]
    return rescore


def run(inputs: dict[str, Path], params: dict, output_dir: Path, context: dict) -> dict:
    """Pipeline step: decide whether the trained candidate beats the champion on the same test split."""
    evaluation = yaml.safe_load(inputs["parameters"].read_text())["evaluation"]
    metric = evaluation["metric"]
    candidate = json.loads((inputs["train"] / "metrics.json").read_text())[metric]
    test = pd.read_csv(inputs["train"] / "test.csv")
    result = promotion.evaluate_candidate(
        context, json.loads(inputs["champion"].read_text()), metric, candidate,
        rescorer(test, metric, context.get("target") or TARGET),
        higher_is_better=promotion.direction(evaluation),
        min_improvement=float(evaluation.get("min_improvement", 0.0)))
    (output_dir / "decision.json").write_text(json.dumps(result["values"]))
    return result
