"""This project's retraining pipeline against a real MLflow store: promotion is fair and safe.

Fair: after the data changes, the champion is re-scored on the candidate's own test split, so a
better candidate is promoted even though its metric is worse than the number the champion was
registered with on the old data. Safe: retrains started together leave `champion` on the best.
"""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from diabetes_regression.tests.conftest import DATA, ROOT
from tests.support.cli import mlops as in_process

pytestmark = pytest.mark.integration


@pytest.fixture
def env(tmp_path):
    """A fresh workspace for this project; nothing inherited that renames the model."""
    base = {k: v for k, v in os.environ.items() if k not in ("MLOPS_MODEL_NAME", "MLOPS_EXPERIMENT")}
    return {**base, "MLOPS_ROOT": str(ROOT), "MLOPS_STATE_DIR": str(tmp_path / "ws"),
            "MLOPS_MODEL": "diabetes_regression", "MLFLOW_DISABLE_TELEMETRY": "true"}


def mlops(env, *args):
    """`mlops *args` with env, in this process (the concurrent retrains below are processes of their own)."""
    return in_process(*args, env=env)


def client_for(env):
    from ml_service.config import load_settings
    from ml_service.workspace.tracking import connect

    return connect(load_settings(env))


def test_a_worse_candidate_is_never_promoted(env):
    assert "registered diabetes_regression_model version 1" in mlops(env, "pipeline", "run").stdout
    result = mlops(env, "pipeline", "run", "--param", "alpha=1000000")
    assert result.returncode == 0, result.stderr
    assert "not promoted: candidate mse" in result.stdout and "vs champion v1" in result.stdout
    client = client_for(env)
    assert str(client.get_model_version_by_alias("diabetes_regression_model", "champion").version) == "1"
    assert len(client.search_model_versions("name='diabetes_regression_model'")) == 1


def shifted_data(path) -> None:
    """Same columns and ranges, a new relation (Y depends more on BMI) and more noise."""
    df = pd.read_csv(DATA)
    noise = np.random.default_rng(7).normal(0, 60, len(df))
    df["Y"] = (df["Y"] + 15 * (df["BMI"] - df["BMI"].mean()) + noise).clip(0, 500).round(1)
    df.to_csv(path, index=False)


def test_after_the_data_changes_the_champion_is_rescored_on_the_same_split(env, tmp_path):
    first = mlops(env, "pipeline", "run")
    assert "registered diabetes_regression_model version 1" in first.stdout, first.stderr
    client = client_for(env)
    stale = float(client.get_model_version("diabetes_regression_model", "1").tags["mse"])
    shifted_data(tmp_path / "new.csv")

    result = mlops(env, "pipeline", "run", "--param", f"data={tmp_path / 'new.csv'}")
    assert result.returncode == 0, result.stderr
    assert "registered diabetes_regression_model version 2" in result.stdout
    experiment = client.get_experiment_by_name("diabetes_regression")
    evaluate = client.search_runs([experiment.experiment_id], "tags.`mlops.step.name` = 'evaluate'",
                                  order_by=["attributes.start_time DESC"], max_results=1)[0]
    candidate, champion = evaluate.data.metrics["candidate_mse"], evaluate.data.metrics["champion_mse"]
    assert candidate > stale  # compared with the stale number, the better candidate would have been refused
    assert candidate < champion  # on the same rows, the old champion is clearly worse
    parent = client.get_run(evaluate.data.tags["mlflow.parentRunId"])
    assert parent.data.tags["mlops.outcome"].startswith("registered diabetes_regression_model version 2")
    assert str(client.get_model_version_by_alias("diabetes_regression_model", "champion").version) == "2"


def with_barrier(tmp_path, count: int):
    """This project's pipeline with a barrier between evaluate and register: every run evaluates against
    the same (absent) champion before any registers, then they register one after the other, best first
    (run N registers once run N-1's `registered` step marked its registration over)."""
    import yaml

    definition = yaml.safe_load((ROOT / "diabetes_regression" / "pipeline.yml").read_text())
    definition["params"].update({"order": 0})
    folder = str(tmp_path / "barrier")
    definition["steps"]["barrier"] = {"function": "diabetes_regression.tests.steps:barrier", "after": ["evaluate"],
                                      "reuse": False, "params": {"dir": folder, "count": count, "order": "$order"}}
    definition["steps"]["register"]["after"] = ["barrier"]
    definition["steps"]["registered"] = {"function": "diabetes_regression.tests.steps:registered",
                                         "after": ["register"], "reuse": False,
                                         "params": {"dir": folder, "order": "$order"}}
    path = tmp_path / "pipeline.yml"
    path.write_text(yaml.safe_dump(definition, sort_keys=False))
    return path


def test_concurrent_retrains_leave_the_best_candidate_as_champion(env, tmp_path):
    # Best first: without the compare-and-set on `champion`, the last (worst) registration would win.
    alphas = ["0.001", "3", "30", "1000"]  # the store is created by the runs themselves, concurrently
    pipeline = with_barrier(tmp_path, len(alphas))
    processes = [subprocess.Popen([sys.executable, "-m", "ml_service.cli", "pipeline", "run", str(pipeline),
                                   "--no-reuse", "--param", f"alpha={alpha}", "--param", f"order={order}"],
                                  cwd=ROOT, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                 for order, alpha in enumerate(alphas)]
    outputs = [p.communicate(timeout=600) for p in processes]
    assert [p.returncode for p in processes] == [0] * len(alphas), outputs

    client = client_for(env)
    experiment = client.get_experiment_by_name("diabetes_regression")
    trains = client.search_runs([experiment.experiment_id], "tags.`mlops.step.name` = 'train'")
    assert len(trains) == len(alphas)
    best = min(run.data.metrics["mse"] for run in trains)
    versions = client.search_model_versions("name='diabetes_regression_model'")
    champion = client.get_model_version_by_alias("diabetes_regression_model", "champion")
    assert float(champion.tags["mse"]) == pytest.approx(best)
    assert min(float(v.tags["mse"]) for v in versions) == pytest.approx(best)
    stdout = "".join(out for out, _ in outputs)
    assert stdout.count("registered diabetes_regression_model version") == len(versions) == 1
    assert stdout.count("(re-decided: the champion changed from none to v1)") == len(alphas) - 1
