"""The train step of the retraining pipeline: read data, split, fit, measure, plot, save."""
from __future__ import annotations

import json
import pickle
from pathlib import Path

import pandas as pd
import yaml

from diabetes_regression.training.plots import save_plots
from diabetes_regression.training.train import get_model_metrics, split_data, train_model


def run(inputs: dict[str, Path], params: dict, output_dir: Path, context: dict) -> dict:
    """Train on inputs['data'] with parameters.yml, overridden by params (e.g. alpha)."""
    config = yaml.safe_load(inputs["parameters"].read_text())["training"]
    alpha = float(params["alpha"]) if params.get("alpha") is not None else float(config["alpha"])
    split = split_data(pd.read_csv(inputs["data"]), float(config.get("test_size", 0.2)),
                       int(config.get("random_state", 0)))
    model = train_model(split, alpha)
    metrics = get_model_metrics(model, split)

    with open(output_dir / "model.pkl", "wb") as handle:
        pickle.dump(model, handle)
    (output_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
    save_plots(split.y_test, model.predict(split.x_test), output_dir / "plots")
    return {"metrics": {**metrics, "alpha": alpha}}
