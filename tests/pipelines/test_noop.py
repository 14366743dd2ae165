"""The no-op run: every step reusable, decided and recorded without importing MLflow (pipelines/noop.py).

What the light recorder wrote is read back through MLflow's own client and compared with what the
normal runner records for the same reused steps. Real MLflow sqlite store in a temp dir.
"""
from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.integration

NO_MLFLOW = ("import sys; from ml_service.cli import main; code = main(['pipeline', 'run', *sys.argv[1:]]); "
             "print('MLFLOW IMPORTED' if 'mlflow' in sys.modules else 'MLFLOW NOT IMPORTED'); sys.exit(code)")


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", NO_MLFLOW, *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=600)


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    from ml_service.config import load_settings
    from tests.conftest import workspace_env

    with pytest.MonkeyPatch.context() as patch:
        for key, value in workspace_env(tmp_path_factory.mktemp("ws")).items():
            patch.setenv(key, value)
        for key in ("MLOPS_TRACKING_URI", "MLOPS_ARTIFACT_ROOT", "MLOPS_BUILD_ID", "MLOPS_BUILD_URI", "MLOPS_MODEL",
                    "MLOPS_MODEL_NAME", "MLOPS_EXPERIMENT"):
            patch.delenv(key, raising=False)
        yield load_settings()


def parents(client, ws):
    experiment = client.get_experiment_by_name(ws.experiment)
    return client.search_runs([experiment.experiment_id], "tags.`mlops.kind` = 'pipeline'",
                              order_by=["attributes.start_time ASC"])


def children(client, ws, parent_id):
    experiment = client.get_experiment_by_name(ws.experiment)
    runs = client.search_runs([experiment.experiment_id], f"tags.`mlflow.parentRunId` = '{parent_id}'")
    return {r.data.tags["mlops.step.name"]: r for r in runs}


def test_a_run_with_every_step_reused_is_recorded_without_mlflow_as_the_runner_records_it(ws, tmp_path):
    first, second = run(), run()  # registers; then evaluate runs again (the champion changed)
    assert first.returncode == 0 and second.returncode == 0, second.stderr
    assert "MLFLOW IMPORTED" in second.stdout
    noop = run()
    assert noop.returncode == 0, noop.stderr
    assert "MLFLOW NOT IMPORTED" in noop.stdout and "not promoted" in noop.stdout

    from ml_service.workspace.tracking import connect

    client = connect(ws)
    *_, full, light = parents(client, ws)
    assert "mlops.recorded_by" not in full.data.tags and light.data.tags["mlops.recorded_by"].startswith("light")
    assert light.info.status == "FINISHED" and light.info.end_time >= light.info.start_time
    assert light.data.tags["mlops.outcome"] == full.data.tags["mlops.outcome"]
    volatile = {"mlops.pid", "mlops.owner", "mlops.recorded_by", "mlflow.source.git.commit", "mlops.git.dirty",
                "mlops.snapshot.signature"}
    assert {k: v for k, v in light.data.tags.items() if k not in volatile} == \
        {k: v for k, v in full.data.tags.items() if k not in volatile}
    assert light.data.params == full.data.params
    assert [(d.dataset.name, d.dataset.digest) for d in light.inputs.dataset_inputs] == \
        [(d.dataset.name, d.dataset.digest) for d in full.inputs.dataset_inputs]
    snapshot = client.download_artifacts(light.info.run_id, "snapshot.zip", str(tmp_path))
    assert "mlops.yml" in zipfile.ZipFile(snapshot).namelist()

    full_steps, light_steps = children(client, ws, full.info.run_id), children(client, ws, light.info.run_id)
    assert set(light_steps) == set(full_steps) == {"validate", "train", "evaluate"}
    assert light.data.tags["mlops.step.register"] == "skipped"
    for name, step in light_steps.items():
        source = step.data.tags["mlops.step.reused_from"]
        executed = client.get_run(source)
        assert executed.data.tags["mlops.step.executed"] == "true"
        assert step.data.tags["mlops.step.key"] == executed.data.tags["mlops.step.key"]
        assert step.data.metrics == executed.data.metrics and step.data.params == executed.data.params
        assert step.info.status == "FINISHED"
        assert [d.dataset.digest for d in step.inputs.dataset_inputs] == \
            [d.dataset.digest for d in full_steps[name].inputs.dataset_inputs]


def test_a_changed_parameter_is_not_a_noop(ws):
    changed = run("--param", "alpha=0.123")
    assert changed.returncode == 0, changed.stderr
    assert "MLFLOW IMPORTED" in changed.stdout and "train        done" in changed.stdout, changed.stdout


def test_a_deleted_source_run_is_not_reused(ws):
    from ml_service.workspace.tracking import connect

    run("--param", "alpha=0.123")  # evaluate once more if the previous test moved the champion
    noop = run("--param", "alpha=0.123")
    assert "MLFLOW NOT IMPORTED" in noop.stdout, noop.stdout
    client = connect(ws)
    validate = children(client, ws, parents(client, ws)[-1].info.run_id)["validate"]
    client.delete_run(validate.data.tags["mlops.step.reused_from"])
    again = run("--param", "alpha=0.123")
    assert again.returncode == 0, again.stderr
    assert "validate     done" in again.stdout and "MLFLOW IMPORTED" in again.stdout, again.stdout


def returns_nothing(inputs, params, output_dir, context):
    """A step that returns None (allowed: no metrics, no values, no outcome)."""
    (output_dir / "done").write_text("yes")


def test_a_step_returning_nothing_runs_and_is_then_reused_without_mlflow(ws, tmp_path):
    path = tmp_path / "nothing.yml"
    function = "tests.pipelines.test_noop:returns_nothing"
    path.write_text(f"name: nothing\nsteps:\n  only: {{function: '{function}'}}\n"
                    f"  after: {{function: '{function}', inputs: {{previous: {{step: only}}}}}}\n")
    first = run(str(path))
    assert first.returncode == 0 and "outcome: completed" in first.stdout, first.stderr
    again = run(str(path))
    assert again.returncode == 0 and "MLFLOW NOT IMPORTED" in again.stdout, again.stdout + again.stderr
    assert "after        reused" in again.stdout


def test_an_unchanged_tree_reuses_the_zipped_snapshot_and_a_changed_one_does_not(ws, tmp_path):
    import zipfile as zf

    from ml_service.config import replace
    from ml_service.pipelines.noop import SNAPSHOT_TAG, _snapshot
    from ml_service.workspace.run_store import RunRow, local_path, open_run_store

    tree = tmp_path / "tree"
    (tree / "pkg").mkdir(parents=True)
    (tree / "pkg" / "code.py").write_text("VALUE = 1\n")
    settings = replace(ws, root=tree)
    from ml_service.workspace.tracking import connect, ensure_experiment

    ensure_experiment(connect(ws), ws)  # the store and experiment exist (when this test runs alone)
    store = open_run_store(ws)
    assert not store.imports_mlflow
    experiment_id, location = store.find_experiment(ws.experiment)

    def snapshot_run() -> Path:
        row = RunRow("snapshot", {})
        dest = local_path(location) / row.run_id / "artifacts" / "snapshot.zip"
        row.tags[SNAPSHOT_TAG] = _snapshot(settings, store, experiment_id, dest)
        store.record(experiment_id, [row], "test")
        return dest

    first, second = snapshot_run(), snapshot_run()
    assert first.samefile(second)  # linked, not zipped again
    (tree / "pkg" / "code.py").write_text("VALUE = 22\n")
    third = snapshot_run()
    assert not third.samefile(second)
    assert zf.ZipFile(third).read("pkg/code.py") == b"VALUE = 22\n"
    store.close()
