import json

import pytest

from diabetes_regression.evaluate.evaluate_model import decide, run
from tests.conftest import ROOT


def test_no_champion_promotes():
    assert decide("mse", 3000.0, None).promote


def test_strictly_better_promotes_and_says_why():
    decision = decide("mse", 2999.0, 3000.0, champion_version="4")
    assert decision.promote and "champion v4" in decision.reason


@pytest.mark.parametrize("candidate", [3000.0, 3000.1, float("nan")])
def test_equal_worse_or_nan_is_not_promoted(candidate):
    decision = decide("mse", candidate, 3000.0)
    assert not decision.promote and decision.reason.startswith("not promoted")


def test_higher_is_better_metrics_are_supported():
    assert decide("r2", 0.5, 0.4, lower_is_better=False).promote
    assert not decide("r2", 0.4, 0.5, lower_is_better=False).promote


def test_step_reads_the_champion_metric_from_its_tags(tmp_path):
    (tmp_path / "train").mkdir()
    (tmp_path / "train" / "metrics.json").write_text(json.dumps({"mse": 10.0}))
    (tmp_path / "champion.json").write_text(json.dumps({"version": "2", "tags": {"mse": "9.5"}}))
    out = tmp_path / "out"
    out.mkdir()
    inputs = {"train": tmp_path / "train", "champion": tmp_path / "champion.json",
              "parameters": ROOT / "diabetes_regression" / "parameters.yml"}
    result = run(inputs, {}, out, {})
    assert result["values"] == {"promote": False}
    assert json.loads((out / "decision.json").read_text())["promote"] is False
