"""The train step of the retraining pipeline: read the data, split, fit, measure, save.

Outputs: model.pkl, metrics.json and test.csv (the held-out rows, features and target: evaluate
re-scores the champion on exactly these).
"""
from __future__ import annotations

import json
import pickle
from pathlib import Path

import pandas as pd
import yaml

from breast_cancer_classification.training.features import TARGET
from breast_cancer_classification.training.train import (
    get_model_metrics, held_out_frame, split_data, train_model)


def model_params(config: dict, params: dict) -> dict:
    """The estimator's arguments: parameters.yml's training.model, overridden by pipeline params that are set."""
    chosen = dict(config.get("model") or {})
    chosen.update({key: value for key, value in params.items() if key in chosen and value is not None})
    return chosen


def run(inputs: dict[str, Path], params: dict, output_dir: Path, context: dict) -> dict:
    """Train on inputs['data'] with parameters.yml, overridden by the pipeline's params."""
    config = yaml.safe_load(inputs["parameters"].read_text())["training"]
    target = params.get("target") or TARGET
    split = split_data(pd.read_csv(inputs["data"]), float(config.get("test_size", 0.2)),
                       int(config.get("random_state", 0)), target)
    chosen = model_params(config, params)
    model = train_model(split, chosen)
    metrics = get_model_metrics(model, split)

    with open(output_dir / "model.pkl", "wb") as handle:
        pickle.dump(model, handle)
    (output_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
    held_out_frame(split, target).to_csv(output_dir / "test.csv", index=False)
    numbers = {key: float(value) for key, value in chosen.items()
               if isinstance(value, (int, float)) and not isinstance(value, bool)}
    return {"metrics": {**metrics, **numbers}}
