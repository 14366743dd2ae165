"""The retraining pipeline against a real MLflow sqlite store in a temp dir, run through the CLI."""
from __future__ import annotations

import os
import subprocess
import sys
import time
import zipfile

import pytest

from ml_service.config import load_settings
from tests.conftest import FIXTURES, ROOT, workspace_env

pytestmark = pytest.mark.integration


def mlops(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ml_service.cli", *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=300)


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    """One workspace shared by this module's tests, which build on each other in order."""
    with pytest.MonkeyPatch.context() as patch:
        for key, value in workspace_env(tmp_path_factory.mktemp("ws")).items():
            patch.setenv(key, value)
        for key in ("MLOPS_TRACKING_URI", "MLOPS_ARTIFACT_ROOT", "MLOPS_BUILD_ID", "MLOPS_BUILD_URI"):
            patch.delenv(key, raising=False)
        yield load_settings()


@pytest.fixture(scope="module")
def client(ws):
    from ml_service.workspace.tracking import connect

    return connect(ws)


def pipeline_runs(client, ws):
    experiment = client.get_experiment_by_name(ws.experiment)
    return client.search_runs([experiment.experiment_id], "tags.`mlops.kind` = 'pipeline'",
                              order_by=["attributes.start_time ASC"])


def child_runs(client, ws, parent_id):
    experiment = client.get_experiment_by_name(ws.experiment)
    runs = client.search_runs([experiment.experiment_id], f"tags.`mlflow.parentRunId` = '{parent_id}'")
    return {r.data.tags["mlops.step.name"]: r for r in runs}


def test_first_run_registers_version_1_and_sets_champion(ws, client):
    result = mlops("pipeline", "run", "--build-id", "101", "--build-uri", "http://127.0.0.1/build/101")
    assert result.returncode == 0, result.stderr
    assert "registered diabetes_regression_model version 1" in result.stdout
    for step in ("validate", "train", "evaluate", "register"):
        assert step in result.stdout

    champion = client.get_model_version_by_alias(ws.model_name, "champion")
    assert str(champion.version) == "1"
    tags = champion.tags
    parent = pipeline_runs(client, ws)[-1]
    children = child_runs(client, ws, parent.info.run_id)
    assert tags["run_id"] == children["train"].info.run_id
    assert float(tags["mse"]) == pytest.approx(children["train"].data.metrics["mse"])
    assert tags["experiment_name"] == ws.experiment
    assert tags["dataset_name"] == "diabetes" and tags["dataset_digest"]
    assert tags["BuildId"] == "101" and tags["BuildUri"] == "http://127.0.0.1/build/101"
    assert tags["git_commit"] == parent.data.tags["mlflow.source.git.commit"]

    assert parent.info.status == "FINISHED"
    assert parent.data.tags["mlops.outcome"].startswith("registered")
    assert parent.data.params["data"] == "data/diabetes.csv"
    assert {d.dataset.name for d in parent.inputs.dataset_inputs} == {"diabetes"}
    assert set(children) == {"validate", "train", "evaluate", "register"}
    assert children["train"].data.params["alpha"] == "" and children["train"].data.metrics["alpha"] == 0.4
    assert children["train"].data.metrics["r2"] > 0.3


def test_the_run_records_a_snapshot_and_plots_and_nothing_goes_to_mlruns(ws, client, tmp_path):
    parent = pipeline_runs(client, ws)[-1]
    snapshot = client.download_artifacts(parent.info.run_id, "snapshot.zip", str(tmp_path))
    names = zipfile.ZipFile(snapshot).namelist()
    assert "diabetes_regression/training/train.py" in names
    assert not any(n.startswith((".venv/", ".git/", ".mlops/")) for n in names)
    train = child_runs(client, ws, parent.info.run_id)["train"]
    plots = {a.path for a in client.list_artifacts(train.info.run_id, "outputs/plots")}
    assert plots == {"outputs/plots/predicted_vs_actual.png", "outputs/plots/residuals.png"}
    assert not (ROOT / "mlruns").exists()


def test_second_identical_run_reuses_train_and_registers_nothing(ws, client):
    first_train = child_runs(client, ws, pipeline_runs(client, ws)[-1].info.run_id)["train"]
    result = mlops("pipeline", "run")
    assert result.returncode == 0, result.stderr
    assert "not promoted" in result.stdout and "reused" in result.stdout
    parent = pipeline_runs(client, ws)[-1]
    children = child_runs(client, ws, parent.info.run_id)
    assert children["train"].data.tags["mlops.step.reused_from"] == first_train.info.run_id
    assert "register" not in children
    assert parent.data.tags["mlops.outcome"].startswith("not promoted")
    assert [str(v.version) for v in client.search_model_versions(f"name='{ws.model_name}'")] == ["1"]


def test_a_worse_candidate_is_never_promoted(ws, client):
    result = mlops("pipeline", "run", "--param", "alpha=1000000")
    assert result.returncode == 0, result.stderr
    assert "not promoted" in result.stdout
    children = child_runs(client, ws, pipeline_runs(client, ws)[-1].info.run_id)
    assert "mlops.step.reused_from" not in children["train"].data.tags
    assert children["train"].data.metrics["mse"] > float(
        client.get_model_version_by_alias(ws.model_name, "champion").tags["mse"])
    assert str(client.get_model_version_by_alias(ws.model_name, "champion").version) == "1"
    assert len(client.search_model_versions(f"name='{ws.model_name}'")) == 1


def test_no_reuse_runs_every_step_again(ws, client):
    result = mlops("pipeline", "run", "--no-reuse")
    assert result.returncode == 0, result.stderr
    children = child_runs(client, ws, pipeline_runs(client, ws)[-1].info.run_id)
    assert all("mlops.step.reused_from" not in run.data.tags for run in children.values())
    assert "not promoted" in result.stdout


def test_registering_the_same_run_twice_is_refused(ws, client, tmp_path):
    from ml_service.workspace.promotion import register_candidate
    from ml_service.workspace.registry import RegistryError

    champion = client.get_model_version_by_alias(ws.model_name, "champion")
    context = {"tracking_uri": ws.tracking_uri, "model_name": ws.model_name,
               "source_runs": {"train": champion.tags["run_id"]}}
    with pytest.raises(RegistryError, match="already registered as diabetes_regression_model version 1"):
        register_candidate(tmp_path, "mse", {}, "train", context)


def write_pipeline(tmp_path, body: str):
    path = tmp_path / "pipeline.yml"
    path.write_text(body)
    return path


# A step runs in a fresh interpreter, or forked from the preloading server when it declares imports.
PROCESS_MODES = {"fresh": "reuse: false", "forked": "reuse: false, imports: [json]"}


@pytest.mark.parametrize("mode", sorted(PROCESS_MODES))
def test_killing_a_step_fails_that_run_cleanly_and_keeps_earlier_records(ws, client, tmp_path, mode):
    before = {r.info.run_id: r.info.status for r in pipeline_runs(client, ws)}
    extra = PROCESS_MODES[mode]
    path = write_pipeline(tmp_path, f"""
name: killed
steps:
  first: {{function: "tests.integration.steps:write_output", {extra}}}
  second: {{function: "tests.integration.steps:kill_self", after: [first], {extra}}}
  third: {{function: "tests.integration.steps:write_output", after: [second]}}
""")
    result = mlops("pipeline", "run", str(path))
    assert result.returncode == 1
    assert "step 'second' failed: killed by signal 9 (SIGKILL)" in result.stderr
    assert "about to be killed" in result.stderr  # the step's own output is kept

    runs = pipeline_runs(client, ws)
    killed = runs[-1]
    assert killed.info.status == "FAILED" and "SIGKILL" in killed.data.tags["mlops.error"]
    children = child_runs(client, ws, killed.info.run_id)
    assert children["first"].info.status == "FINISHED"
    assert children["second"].info.status == "FAILED" and "third" not in children
    assert {r.info.run_id: r.info.status for r in runs[:-1]} == before
    assert str(client.get_model_version_by_alias(ws.model_name, "champion").version) == "1"


def test_a_step_exception_is_recorded_with_its_message(ws, tmp_path):
    path = write_pipeline(tmp_path, "name: raises\nsteps: {only: {function: 'tests.integration.steps:raise_error'}}")
    result = mlops("pipeline", "run", str(path))
    assert result.returncode == 1
    assert "ValueError: the step found something wrong" in result.stderr


@pytest.mark.parametrize("mode", sorted(PROCESS_MODES))
def test_a_timeout_kills_the_steps_whole_process_tree(ws, tmp_path, mode):
    pid_file = tmp_path / "child.pid"
    path = write_pipeline(tmp_path, f"""
name: hangs
steps:
  hang:
    function: "tests.integration.steps:spawn_and_hang"
    params: {{pid_file: "{pid_file}"}}
    timeout_minutes: 0.05
    {PROCESS_MODES[mode].replace(", ", chr(10) + "    ")}
""")
    result = mlops("pipeline", "run", str(path))
    assert result.returncode == 1 and "timed out" in result.stderr
    child = int(pid_file.read_text())
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and os.path.exists(f"/proc/{child}"):
        time.sleep(0.1)
    assert not os.path.exists(f"/proc/{child}"), "the step's child process survived the timeout"


def test_published_pipelines_are_versioned_and_runnable_by_version(ws, tmp_path):
    first = mlops("pipeline", "publish")
    assert first.returncode == 0 and "published diabetes-retrain version 1" in first.stdout
    again = mlops("pipeline", "publish")
    assert "unchanged" in again.stdout and "version 1" in again.stdout
    changed = (ROOT / "diabetes_regression" / "pipeline.yml").read_text().replace(
        "description: Train", "description: Changed. Train")
    second = mlops("pipeline", "publish", str(write_pipeline(tmp_path, changed)))
    assert "published diabetes-retrain version 2" in second.stdout and "default" in second.stdout
    listing = mlops("pipeline", "list").stdout
    assert "diabetes-retrain" in listing and listing.count("diabetes-retrain") == 2
    run = mlops("pipeline", "run", "diabetes-retrain", "--version", "1")
    assert run.returncode == 0 and "diabetes-retrain v1" in run.stdout, run.stderr
    missing = mlops("pipeline", "run", "diabetes-retrain", "--version", "9")
    assert missing.returncode == 2 and "has no version 9" in missing.stderr


def test_model_list_and_show(ws):
    listing = mlops("model", "list")
    assert listing.returncode == 0 and "champion" in listing.stdout
    shown = mlops("model", "show", "diabetes_regression_model:1")
    assert "aliases:  champion" in shown.stdout and "dataset_digest" in shown.stdout


def test_deploy_prod_without_a_cluster_commits_the_desired_state_and_applies_nothing(ws, client):
    result = mlops("deploy", "prod", "--model", f"{ws.model_name}:1")
    assert result.returncode == 0, result.stderr
    assert "GitOps mode" in result.stdout and "NOTHING WAS APPLIED TO A CLUSTER" in result.stdout
    repo = ws.state_dir / "gitops"
    values = (repo / "production" / "values-prod.yaml").read_text()
    assert "tag: '1'" in values and f"name: {ws.model_name}" in values
    log = subprocess.run(["git", "-C", str(repo), "log", "--oneline"], capture_output=True, text=True).stdout
    assert f"production: {ws.model_name} version 1" in log
    again = mlops("deploy", "prod", "--model", f"{ws.model_name}:1")
    assert "unchanged" in again.stdout  # committing the same desired state twice makes no new commit
    from mlflow.exceptions import MlflowException

    with pytest.raises(MlflowException):
        client.get_model_version_by_alias(ws.model_name, "production")
    listing = mlops("deploy", "list").stdout
    assert "production" in listing and "desired" in listing and "gitops" in listing


def test_corrupted_data_fails_the_pipeline_before_training(workspace):
    result = mlops("pipeline", "run", "--param", f"data={FIXTURES / 'out_of_range.csv'}")
    assert result.returncode == 1
    assert "step 'validate' failed" in result.stderr
    assert "expect_column_values_to_be_between [AGE]" in result.stderr
    assert "expect_column_values_to_be_between [BMI]" in result.stderr
    from ml_service.workspace.tracking import connect

    client = connect(workspace)
    parent = pipeline_runs(client, workspace)[-1]
    assert parent.info.status == "FAILED"
    assert set(child_runs(client, workspace, parent.info.run_id)) == {"validate"}
    assert client.search_model_versions(f"name='{workspace.model_name}'") == []
