"""The train step of the retraining pipeline: read data, split, fit, measure, plot, save.

Outputs: model.pkl, metrics.json, test.csv (the held-out rows: evaluate re-scores the champion on
exactly these) and plots/.
"""
from __future__ import annotations

import json
import pickle
from pathlib import Path

import pandas as pd
import yaml

from diabetes_regression.training.plots import save_plots
from diabetes_regression.training.train import TARGET, get_model_metrics, split_data, held_out_frame, train_model


def run(inputs: dict[str, Path], params: dict, output_dir: Path, context: dict) -> dict:
    """Train on inputs['data'] with parameters.yml, overridden by params (e.g. alpha)."""
    config = yaml.safe_load(inputs["parameters"].read_text())["training"]
    alpha = float(params["alpha"]) if params.get("alpha") is not None else float(config["alpha"])
    target = params.get("target") or TARGET
    split = split_data(pd.read_csv(inputs["data"]), float(config.get("test_size", 0.2)),
                       int(config.get("random_state", 0)), target)
    model = train_model(split, alpha)
    metrics = get_model_metrics(model, split)

    with open(output_dir / "model.pkl", "wb") as handle:
        pickle.dump(model, handle)
    (output_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
    held_out_frame(split, target).to_csv(output_dir / "test.csv", index=False)
    save_plots(split.y_test, model.predict(split.x_test), output_dir / "plots")
    return {"metrics": {**metrics, "alpha": alpha}}
