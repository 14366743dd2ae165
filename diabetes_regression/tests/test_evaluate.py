import json
import pickle

import pytest

from diabetes_regression.evaluate.evaluate_model import rescorer, run
from diabetes_regression.tests.conftest import ROOT
from diabetes_regression.training.train import held_out_frame, metrics_of, split_data


def test_rescorer_measures_a_stored_model_on_the_given_rows(diabetes, trained_model_dir):
    split = split_data(diabetes)
    model = pickle.loads((trained_model_dir / "model.pkl").read_bytes())
    expected = metrics_of(model, split.x_test, split.y_test)["mse"]
    assert rescorer(held_out_frame(split), "mse")(trained_model_dir) == pytest.approx(expected)


def test_without_a_champion_the_step_promotes_and_records_the_decision(tmp_path, diabetes):
    train = tmp_path / "train"
    train.mkdir()
    (train / "metrics.json").write_text(json.dumps({"mse": 10.0}))
    held_out_frame(split_data(diabetes)).to_csv(train / "test.csv", index=False)
    (tmp_path / "champion.json").write_text(json.dumps({"version": None}))
    out = tmp_path / "out"
    out.mkdir()
    inputs = {"train": train, "champion": tmp_path / "champion.json",
              "parameters": ROOT / "diabetes_regression" / "parameters.yml"}
    result = run(inputs, {}, out, {"target": "Y"})
    assert result["values"]["promote"] is True and result["values"]["champion_version"] == ""
    assert json.loads((out / "decision.json").read_text())["promote"] is True
