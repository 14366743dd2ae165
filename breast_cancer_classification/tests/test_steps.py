"""The pipeline steps on the project's own data: train writes its outputs, evaluate promotes without a
champion."""
from __future__ import annotations

import json

import pandas as pd

from breast_cancer_classification.evaluate.evaluate_model import run as evaluate
from breast_cancer_classification.tests.conftest import PARAMETERS
from breast_cancer_classification.training.features import FEATURES
from breast_cancer_classification.training.step import model_params, run as train


def test_train_then_evaluate_without_a_champion(model_entry, tmp_path):
    train_dir, evaluate_dir = tmp_path / "train", tmp_path / "evaluate"
    train_dir.mkdir()
    evaluate_dir.mkdir()
    result = train({"data": model_entry.data, "parameters": PARAMETERS}, {"target": model_entry.target},
                   train_dir, {})
    assert {"model.pkl", "metrics.json", "test.csv"} <= {p.name for p in train_dir.iterdir()}
    test = pd.read_csv(train_dir / "test.csv")
    assert list(test.columns) == FEATURES + [model_entry.target] and len(test) > 0
    assert set(json.loads((train_dir / "metrics.json").read_text())) <= set(result["metrics"])

    (tmp_path / "champion.json").write_text(json.dumps({"version": None}))
    inputs = {"train": train_dir, "champion": tmp_path / "champion.json", "parameters": PARAMETERS}
    decision = evaluate(inputs, {}, evaluate_dir, {"target": model_entry.target})
    assert decision["values"]["promote"] is True and decision["values"]["champion_version"] == ""
    assert json.loads((evaluate_dir / "decision.json").read_text())["promote"] is True


def test_pipeline_params_override_only_the_arguments_parameters_yml_declares():
    config = {"model": {"a": 1.0, "b": 2}}
    assert model_params(config, {"a": 0.5, "b": None, "target": "y"}) == {"a": 0.5, "b": 2}
