"""Several `mlops` processes started at once on a fresh embedded workspace (issue 18.6).

No store exists when they start: one creates the sqlite schema, the others wait for it; they
create the experiment and the registered model together; their registrations are serialised.
Real processes, a real MLflow sqlite store in a temp dir.
"""
from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.integration

RUNS = 4


def test_concurrent_retrains_on_a_fresh_workspace_all_finish_and_register_once(workspace):
    assert not workspace.state_dir.exists()
    procs = [subprocess.Popen([sys.executable, "-m", "ml_service.cli", "pipeline", "run"], cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(RUNS)]
    results = [(proc.wait(timeout=600), *proc.communicate()) for proc in procs]
    for code, out, err in results:
        assert code == 0 and "Traceback" not in err, err
    registered = [out for _, out, _ in results if "\noutcome: registered " in out]
    assert len(registered) == 1, [out.splitlines()[-1] for _, out, _ in results]  # same data and model: once

    from ml_service.workspace.tracking import connect

    client = connect(workspace)
    name = workspace.model_name
    assert [str(v.version) for v in client.search_model_versions(f"name='{name}'")] == ["1"]
    assert str(client.get_model_version_by_alias(name, "champion").version) == "1"
    experiment = client.get_experiment_by_name(workspace.experiment)
    runs = client.search_runs([experiment.experiment_id], "tags.`mlops.kind` = 'pipeline'")
    assert sorted(r.info.status for r in runs) == ["FINISHED"] * RUNS


def test_concurrent_commands_of_every_kind_on_a_fresh_workspace(workspace):
    """Readers and writers at once: listing models and pipelines while runs and publishing start."""
    commands = [["pipeline", "run"], ["pipeline", "publish"], ["model", "list"], ["pipeline", "list"],
                ["pipeline", "publish"], ["pipeline", "publish"]]
    procs = [subprocess.Popen([sys.executable, "-m", "ml_service.cli", *args], cwd=ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for args in commands]
    outputs = []
    for args, proc in zip(commands, procs):
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0 and "Traceback" not in err, (args, err)
        outputs.append(out)
    published = [out for args, out in zip(commands, outputs) if args[1] == "publish"]
    assert sum(out.startswith("published ") for out in published) == 1, published  # one version 1, not three
    from ml_service.pipelines.publish import list_published

    assert [p.version for p in list_published(workspace)] == [1]
    listing = subprocess.run([sys.executable, "-m", "ml_service.cli", "pipeline", "list"], cwd=ROOT,
                             capture_output=True, text=True).stdout
    assert len(listing.strip().splitlines()) == 2, listing  # the header and one version


def test_concurrent_publishes_take_one_version(workspace):
    """Publishing the same definition from several processes at once makes one version, not several."""
    subprocess.run([sys.executable, "-m", "ml_service.cli", "model", "list"], cwd=ROOT, check=True,
                   capture_output=True)  # the store exists: the publishes really start together
    procs = [subprocess.Popen([sys.executable, "-m", "ml_service.cli", "pipeline", "publish"], cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(RUNS)]
    outputs = []
    for proc in procs:
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0 and "Traceback" not in err, err
        outputs.append(out)
    assert sum(out.startswith("published ") for out in outputs) == 1, outputs
    from ml_service.pipelines.publish import list_published

    assert [p.version for p in list_published(workspace)] == [1]
    listing = subprocess.run([sys.executable, "-m", "ml_service.cli", "pipeline", "list"], cwd=ROOT,
                             capture_output=True, text=True).stdout
    assert len(listing.strip().splitlines()) == 2, listing  # the header and one version
