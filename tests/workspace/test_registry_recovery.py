"""The registry after accidents: a registration killed half-way, a champion deleted below the CLI.

Real processes and a real MLflow sqlite store in a temp dir; the kill is a real SIGKILL of
`mlops pipeline run` at the moment its register step has created the version but not moved
`champion` (the step waits there: MLOPS_TEST_PAUSE, ml_service/workspace/faults.py).
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

from tests.conftest import ROOT
from tests.support.cli import mlops
from tests.pipelines.test_kill import alive, wait_for

pytestmark = pytest.mark.integration


def versions(client, name: str) -> list[str]:
    return sorted(str(v.version) for v in client.search_model_versions(f"name='{name}'"))


def champion(client, name: str) -> str | None:
    from ml_service.workspace.registry import get_alias

    found = get_alias(client, name, "champion")
    return str(found.version) if found is not None else None


def test_a_registration_killed_before_champion_moves_is_completed_by_the_rerun(workspace, tmp_path):
    from ml_service.workspace.tracking import connect

    name = workspace.model_name
    marker = tmp_path / "paused"
    env = {**os.environ, "MLOPS_TEST_PAUSE": f"after-version:{marker}"}
    runner = subprocess.Popen([sys.executable, "-m", "ml_service.cli", "pipeline", "run"], cwd=ROOT, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert wait_for(lambda: marker.exists() and marker.read_text(), 300), "the register step never got there"
    finally:
        os.kill(runner.pid, signal.SIGKILL)
        runner.wait()
    step = int(marker.read_text())
    assert wait_for(lambda: not alive(step), 30), "the register step outlived its runner"

    client = connect(workspace)
    assert versions(client, name) == ["1"] and champion(client, name) is None  # the half registration
    assert client.get_model_version(name, "1").tags["mlops.registration"] == "pending"

    out = tmp_path / "rerun.json"
    rerun = mlops("pipeline", "run", "--output-json", str(out))
    assert rerun.returncode == 0, rerun.stderr
    assert "completed the registration interrupted in pipeline run" in rerun.stdout
    assert json.loads(out.read_text())["registered_version"] == "1"  # the release pipeline gets it
    assert versions(client, name) == ["1"] and champion(client, name) == "1"
    version = client.get_model_version(name, "1")
    assert version.tags["mlops.registration"] == "complete"
    assert version.tags["mlops.decision"].startswith("promoted: no champion yet")

    again = mlops("pipeline", "run")
    assert again.returncode == 0 and "not promoted" in again.stdout, again.stderr
    assert versions(client, name) == ["1"]


def test_a_missing_champion_stops_promotion_until_one_is_chosen(workspace, tmp_path):
    import mlflow

    from ml_service.workspace.tracking import connect

    name = workspace.model_name
    assert mlops("pipeline", "run").returncode == 0
    client = connect(workspace)
    first = client.get_model_version(name, "1")
    # Below the CLI: a second version made the champion by hand, then deleted with the MLflow client.
    second = mlflow.register_model(first.source, name, tags={"run_id": "by-hand"})
    client.set_registered_model_alias(name, "champion", second.version)
    client.delete_model_version(name, second.version)
    assert versions(client, name) == ["1"] and champion(client, name) is None

    refused = mlops("pipeline", "run")
    assert refused.returncode == 1
    assert f"{name} has registered versions (1) but no 'champion' alias" in refused.stderr
    assert f"mlops model promote {name}:VERSION" in refused.stderr and "Traceback" not in refused.stderr
    assert versions(client, name) == ["1"] and champion(client, name) is None  # nothing promoted

    missing = mlops("model", "promote", f"{name}:7")
    assert missing.returncode == 1 and "has no version 7" in missing.stderr and "Traceback" not in missing.stderr
    promoted = mlops("model", "promote", f"{name}:1", "--reason", "restore after the deletion",
                     env={**os.environ, "MLOPS_USER": "ops@example.com"})
    assert promoted.returncode == 0, promoted.stderr
    assert f"champion of {name}: none -> v1" in promoted.stdout
    assert champion(client, name) == "1"
    assert client.get_model_version(name, "1").tags["mlops.promoted_by"] == "ops@example.com"
    record = client.search_runs([client.get_experiment_by_name("mlops-registry").experiment_id],
                                "tags.`mlops.kind` = 'promotion'")
    assert [(r.data.tags["model_version"], r.data.tags["reason"], r.data.tags["mlflow.user"]) for r in record] == \
        [("1", "restore after the deletion", "ops@example.com")]
    assert "unchanged" in mlops("model", "promote", f"{name}:1").stdout

    retrain = mlops("pipeline", "run")
    assert retrain.returncode == 0 and "not promoted" in retrain.stdout and "vs champion v1" in retrain.stdout
    refused_delete = mlops("model", "delete", f"{name}:1")
    assert refused_delete.returncode == 1 and "holds alias(es) champion" in refused_delete.stderr
    assert versions(client, name) == ["1"]


def test_registration_refuses_when_the_champion_vanished_before_it(workspace):
    """The register step re-checks under the lock: evaluate saw no champion, but versions exist."""
    from ml_service.workspace.promotion import register_candidate
    from ml_service.workspace.registry import RegistryError
    from ml_service.workspace.tracking import connect, ensure_experiment

    name = workspace.model_name
    assert mlops("pipeline", "run").returncode == 0
    client = connect(workspace)
    client.delete_registered_model_alias(name, "champion")
    train = client.create_run(ensure_experiment(client, workspace)).info.run_id
    context = {"tracking_uri": workspace.tracking_uri, "model_name": name, "state_dir": str(workspace.state_dir),
               "source_runs": {"train": train}}

    def never():
        raise AssertionError("a model was logged for a refused registration")

    with pytest.raises(RegistryError, match="no 'champion' alias"):
        register_candidate(context, never, "mse", 1.0, decided_against=None)
    assert versions(client, name) == ["1"] and champion(client, name) is None
