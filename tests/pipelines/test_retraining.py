"""The retraining pipeline against a real MLflow sqlite store in a temp dir, run through the CLI.

It runs the default model project of mlops.yml, whatever it is: nothing here names one.
"""
from __future__ import annotations

import subprocess
import time
import zipfile

import pytest

from ml_service.config import load_settings
from tests.conftest import ROOT, workspace_env
from tests.support.cli import mlops
from tests.support.procs import running

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    """One workspace shared by this module's tests, which build on each other in order."""
    with pytest.MonkeyPatch.context() as patch:
        for key, value in workspace_env(tmp_path_factory.mktemp("ws")).items():
            patch.setenv(key, value)
        for key in ("MLOPS_TRACKING_URI", "MLOPS_ARTIFACT_ROOT", "MLOPS_BUILD_ID", "MLOPS_BUILD_URI", "MLOPS_MODEL",
                    "MLOPS_MODEL_NAME", "MLOPS_EXPERIMENT"):
            patch.delenv(key, raising=False)
        yield load_settings()


@pytest.fixture(scope="module")
def client(ws):
    from ml_service.workspace.tracking import connect

    return connect(ws)


def client_of(ws):
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
    assert f"registered {ws.model_name} version 1" in result.stdout
    for step in ("validate", "train", "evaluate", "register"):
        assert step in result.stdout

    champion = client.get_model_version_by_alias(ws.model_name, "champion")
    assert str(champion.version) == "1"
    tags = champion.tags
    parent = pipeline_runs(client, ws)[-1]
    children = child_runs(client, ws, parent.info.run_id)
    assert tags["run_id"] == children["train"].info.run_id
    metric = tags["metric"]
    assert float(tags[metric]) == pytest.approx(children["train"].data.metrics[metric])
    assert children["evaluate"].data.metrics[f"candidate_{metric}"] == pytest.approx(float(tags[metric]))
    assert tags["experiment_name"] == ws.experiment == ws.project
    assert tags["dataset_name"] == ws.model.dataset and tags["dataset_digest"]
    assert tags["BuildId"] == "101" and tags["BuildUri"] == "http://127.0.0.1/build/101"
    assert tags["git_commit"] == parent.data.tags["mlflow.source.git.commit"]

    assert parent.info.status == "FINISHED"
    assert parent.data.tags["mlops.outcome"].startswith("registered")
    assert parent.data.params["data"] == ws.model.builtin_params(ROOT)["data"]
    assert parent.data.tags["mlops.model.project"] == ws.project
    assert {d.dataset.name for d in parent.inputs.dataset_inputs} == {ws.model.dataset}
    assert set(children) == {"validate", "train", "evaluate", "register"}
    model = client.get_model_version_download_uri(ws.model_name, "1")
    assert model  # the project logged a model with a signature the scoring service reads
    import mlflow.models

    assert mlflow.models.get_model_info(f"models:/{ws.model_name}/1").signature.inputs.input_names()


def test_the_run_records_a_snapshot_and_plots_and_nothing_goes_to_mlruns(ws, client, tmp_path):
    parent = pipeline_runs(client, ws)[-1]
    snapshot = client.download_artifacts(parent.info.run_id, "snapshot.zip", str(tmp_path))
    names = zipfile.ZipFile(snapshot).namelist()
    assert f"{ws.project}/pipeline.yml" in names and "mlops.yml" in names
    assert not any(n.startswith((".venv/", ".git/", ".mlops/")) for n in names)
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


def test_not_promoted_records_both_numbers_on_the_same_test_split(ws, client):
    parent = pipeline_runs(client, ws)[-1]
    evaluate = child_runs(client, ws, parent.info.run_id)["evaluate"]
    metric = client.get_model_version(ws.model_name, "1").tags["metric"]
    candidate, champion = (evaluate.data.metrics[f"{who}_{metric}"] for who in ("candidate", "champion"))
    assert candidate == pytest.approx(champion)  # the same model, re-scored on the same rows
    outcome = parent.data.tags["mlops.outcome"]
    assert f"candidate {metric} {candidate:.4f} vs champion v1 {champion:.4f} on the same test split" in outcome


def test_no_reuse_runs_every_step_again(ws, client):
    result = mlops("pipeline", "run", "--no-reuse")
    assert result.returncode == 0, result.stderr
    children = child_runs(client, ws, pipeline_runs(client, ws)[-1].info.run_id)
    assert all("mlops.step.reused_from" not in run.data.tags for run in children.values())
    assert "not promoted" in result.stdout


def test_registering_the_same_run_twice_makes_no_second_version(ws, client, tmp_path):
    from ml_service.workspace.promotion import register_candidate

    champion = client.get_model_version_by_alias(ws.model_name, "champion")
    context = {"tracking_uri": ws.tracking_uri, "model_name": ws.model_name, "state_dir": str(ws.state_dir),
               "source_runs": {"train": champion.tags["run_id"]}}

    def never():
        raise AssertionError("a second model was logged for an already registered run")

    result = register_candidate(context, never, "m", 1.0, decided_against=str(champion.version))
    assert result["outcome"] == f"{ws.model_name} version 1 (run {champion.tags['run_id']}) is already the champion"
    assert [str(v.version) for v in client.search_model_versions(f"name='{ws.model_name}'")] == ["1"]


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
  first: {{function: "tests.support.steps:write_output", {extra}}}
  second: {{function: "tests.support.steps:kill_self", after: [first], {extra}}}
  third: {{function: "tests.support.steps:write_output", after: [second]}}
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
    path = write_pipeline(tmp_path, "name: raises\nsteps: {only: {function: 'tests.support.steps:raise_error'}}")
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
    function: "tests.support.steps:spawn_and_hang"
    params: {{pid_file: "{pid_file}"}}
    timeout_minutes: 0.05
    {PROCESS_MODES[mode].replace(", ", chr(10) + "    ")}
""")
    result = mlops("pipeline", "run", str(path))
    assert result.returncode == 1 and "timed out" in result.stderr
    child = int(pid_file.read_text())
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and running(child):
        time.sleep(0.1)
    assert not running(child), "the step's child process survived the timeout"


def test_published_pipelines_are_versioned_and_runnable_by_version(ws, tmp_path):
    import yaml

    name = yaml.safe_load(ws.pipeline_file.read_text())["name"]
    first = mlops("pipeline", "publish")
    assert first.returncode == 0 and f"published {name} version 1" in first.stdout
    again = mlops("pipeline", "publish")
    assert "unchanged" in again.stdout and "version 1" in again.stdout
    changed = ws.pipeline_file.read_text().replace("\ndescription: ", "\ndescription: Changed. ")
    second = mlops("pipeline", "publish", str(write_pipeline(tmp_path, changed)))
    assert f"published {name} version 2" in second.stdout and "default" in second.stdout
    listing = mlops("pipeline", "list").stdout
    assert listing.count(name) == 2 and ws.project in listing
    from ml_service.pipelines.publish import list_published

    assert [(p.version, p.default) for p in list_published(ws) if p.name == name] == [(1, False), (2, True)]
    run = mlops("pipeline", "run", name, "--version", "1")
    assert run.returncode == 0 and f"{name} v1" in run.stdout, run.stderr
    assert pipeline_runs(client_of(ws), ws)[-1].data.tags["mlops.pipeline.published_version"] == "1"
    published = mlops("pipeline", "run", "--published")
    assert published.returncode == 0 and f"{name} v2" in published.stdout, published.stderr
    assert pipeline_runs(client_of(ws), ws)[-1].data.tags["mlops.pipeline.published_version"] == "2"
    missing = mlops("pipeline", "run", name, "--version", "9")
    assert missing.returncode == 2 and "has no version 9" in missing.stderr


def test_model_list_and_show(ws):
    listing = mlops("model", "list")
    assert listing.returncode == 0 and "champion" in listing.stdout
    shown = mlops("model", "show", f"{ws.model_name}:1")
    assert "aliases:  champion" in shown.stdout and "dataset_digest" in shown.stdout


def test_deploy_prod_without_a_cluster_commits_the_desired_state_and_applies_nothing(ws, client):
    result = mlops("deploy", "prod", "--model", f"{ws.model_name}:1")
    assert result.returncode == 0, result.stderr
    assert "GitOps mode" in result.stdout and "NOTHING WAS APPLIED TO A CLUSTER" in result.stdout
    repo = ws.state_dir / "gitops"
    values = (repo / "production" / ws.model_name / "values-prod.yaml").read_text()
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


def test_corrupted_data_fails_the_pipeline_before_training(workspace, tmp_path):
    import csv

    rows = list(csv.reader(workspace.model.data.read_text().splitlines()))
    dropped = next(c for c in rows[0] if c != workspace.model.target)
    index = rows[0].index(dropped)
    broken = tmp_path / "broken.csv"
    broken.write_text("\n".join(",".join(r[:index] + r[index + 1:]) for r in rows) + "\n")
    result = mlops("pipeline", "run", "--param", f"data={broken}")
    assert result.returncode == 1
    assert "step 'validate' failed" in result.stderr
    assert "expect_table_columns_to_match_ordered_list" in result.stderr and dropped in result.stderr
    from ml_service.workspace.tracking import connect

    client = connect(workspace)
    parent = pipeline_runs(client, workspace)[-1]
    assert parent.info.status == "FAILED"
    assert set(child_runs(client, workspace, parent.info.run_id)) == {"validate"}
    assert client.search_model_versions(f"name='{workspace.model_name}'") == []
