"""The RunStore contract (workspace/run_store.py): the same operations through MLflow's client (MlflowRunStore)
and through the sqlite fast path (SqliteRunStore), each on a real embedded MLflow store in a temp dir, leave what
MLflow's own client reads back the same: runs, names, statuses, times, users, artifact URIs, params, metrics
and their history, tags, dataset inputs, orphans ended; and the answers of every read (runs by tags, aliases,
model versions traced to a run of an experiment) are the same.
open_run_store takes the fast path only for a finished sqlite store of a known schema revision, importing no
MLflow."""
from __future__ import annotations

import math
import sqlite3
import subprocess
import sys

import pytest

from ml_service.config import replace
from ml_service.workspace import owners
from ml_service.workspace.mlflow_run_store import MlflowRunStore
from ml_service.workspace.refs import ModelRef
from ml_service.workspace.run_store import RunRow, RunStore, open_run_store
from ml_service.workspace.sqlite_run_store import SqliteRunStore
from tests.conftest import ROOT

pytestmark = pytest.mark.integration

KINDS = ("mlflow", "sqlite")
DATASET = {"name": "diabetes", "digest": "abcd1234", "source_type": "local", "source": '{"uri": "/d.csv"}',
           "schema": '{"mlflow_colspec": []}', "profile": '{"num_rows": 3}', "context": "training"}


def settings_in(tmp_path_factory, kind: str):
    """Settings of a fresh embedded workspace whose store MLflow created (as every command creates it)."""
    from ml_service.config import load_settings
    from ml_service.workspace.tracking import connect
    from tests.conftest import workspace_env

    with pytest.MonkeyPatch.context() as patch:
        for key, value in workspace_env(tmp_path_factory.mktemp(kind)).items():
            patch.setenv(key, value)
        for key in ("MLOPS_TRACKING_URI", "MLOPS_ARTIFACT_ROOT", "MLOPS_BUILD_ID", "MLOPS_BUILD_URI", "MLOPS_MODEL",
                    "MLOPS_MODEL_NAME", "MLOPS_EXPERIMENT"):
            patch.delenv(key, raising=False)
        settings = load_settings()
    return settings, connect(settings)


def store_of(kind: str, settings) -> RunStore:
    store = MlflowRunStore(settings) if kind == "mlflow" else open_run_store(settings)
    assert isinstance(store, MlflowRunStore if kind == "mlflow" else SqliteRunStore)
    assert isinstance(store, RunStore)  # every operation of the interface is there
    return store


def gone_owner() -> str:
    process = subprocess.Popen(["sleep", "600"])
    owner = owners.owner_tag(process.pid)
    process.kill()
    process.wait()
    return owner


def operate(store, client) -> dict:
    """The sequence every RunStore must answer alike; the answers (ids named by their role)."""
    from mlflow.exceptions import MlflowException

    answers = {}
    experiment_id, location = store.ensure_experiment("contract")
    answers["ensure_again"] = store.ensure_experiment("contract") == (experiment_id, location)
    answers["location"] = location
    answers["find_experiment"] = store.find_experiment("contract") == (experiment_id, location)
    answers["find_missing_experiment"] = store.find_experiment("no such experiment")

    job = store.start_run(experiment_id, "job", {"mlops.kind": "batch", "mlflow.user": "alice"},
                          {"alpha": "0.5", "workers": "2"})
    store.log_metrics(job, {"rows": 10.0, "spread": float("nan")}, 1000)
    store.log_metrics(job, {"rows": 5.0}, 500)  # older: history, not the latest value
    store.end_run(job, "FAILED")
    answers["reopen"] = store.reopen_run(job)
    store.log_metrics(job, {"rows": 30.0, "rate": 7.5}, 2000)
    store.end_run(job, "FINISHED")
    answers["reopen_missing"] = store.reopen_run("0" * 32)
    with pytest.raises((LookupError, MlflowException)):
        store.end_run("0" * 32, "FINISHED")

    orphan = store.start_run(experiment_id, "orphan", {owners.OWNER_TAG: gone_owner()}, {})
    live = store.start_run(experiment_id, "live", {owners.OWNER_TAG: owners.owner_tag()}, {})
    parent = RunRow("pipeline", {"mlops.kind": "pipeline", "k": "1", "executed": "true"},
                    params={"alpha": "1"}, metrics={"mse": 2.5, "bad": float("nan")}, datasets=[DATASET],
                    start=1000, end=5000)
    child = RunRow("train", {"mlflow.parentRunId": parent.run_id, "k": "1"}, params={"depth": "3"},
                   metrics={"mse": 2.5}, datasets=[DATASET], start=1100, end=4900)
    failed = RunRow("failed", {"k": "1", "executed": "true"}, status="FAILED", start=6000, end=6100)
    parent_id, child_id, failed_id = store.record(experiment_id, [parent, child, failed], "contract run")
    ids = {job: "JOB", orphan: "ORPHAN", live: "LIVE", parent_id: "PARENT", child_id: "CHILD", failed_id: "FAILED"}
    found = store.find_run(experiment_id, {"k": "1", "executed": "true"})  # the failed one is newer
    answers["find_run"] = (ids[found[0]], found[1] == client.get_run(parent_id).info.artifact_uri)
    answers["find_run_missing"] = store.find_run(experiment_id, {"k": "2"})
    answers["run_tags"] = {k: ids.get(v, v) for k, v in store.run_tags(child_id).items()}

    client.create_registered_model("m")
    for _ in range(2):
        client.create_model_version("m", location, tags={"run_id": parent_id})
    client.set_registered_model_alias("m", "champion", "2")
    version, tags = store.alias("m", "champion")
    answers["alias"] = (version, {k: ids.get(v, v) for k, v in tags.items()})
    answers["alias_missing"] = (store.alias("m", "qa"), store.alias("nobody", "champion"))

    answers["finished_run_tags"] = [{k: ids.get(v, v) for k, v in tags.items()}
                                    for tags in store.finished_run_tags(experiment_id, {"k": "1"})]
    answers["finished_run_tags_missing"] = store.finished_run_tags(experiment_id, {"k": "2"})
    source = f"{client.get_run(parent_id).info.artifact_uri}/model"
    client.create_registered_model("t")
    client.create_model_version("t", source, run_id=parent_id)
    client.set_registered_model_alias("t", "champion", "1")
    client.create_model_version("t", source, run_id=parent_id)
    client.delete_model_version("t", "2")

    def traced(ref: ModelRef, experiment: str = "contract"):
        found = store.traced_version(ref, experiment)
        return found and (found[0], found[1].replace(parent_id, "PARENT").replace(location, "LOCATION"))

    answers["traced_version"] = (traced(ModelRef("t", version=1)), traced(ModelRef("t", alias="champion")))
    answers["untraced_version"] = (traced(ModelRef("t", version=1), "other"),  # not a run of that experiment
                                   traced(ModelRef("m", version=2)),  # no source run
                                   traced(ModelRef("t", version=2)),  # deleted
                                   traced(ModelRef("t", version=9)), traced(ModelRef("t", alias="qa")),
                                   traced(ModelRef("nobody", alias="champion")), traced(ModelRef("t")))
    store.close()
    return {"answers": answers, "ids": ids, "experiment_id": experiment_id, "location": location}


def read_back(client, done: dict) -> dict:
    """Every run of the experiment as MLflow's client reads it, ids named by their role."""
    ids, location = done["ids"], done["location"]
    runs = {}
    for run in client.search_runs([done["experiment_id"]]):
        info, data = run.info, run.data
        role = ids[info.run_id]
        tags = {k: ids.get(v, v) for k, v in data.tags.items()}
        if owners.ERROR_TAG in tags:
            tags[owners.ERROR_TAG] = tags[owners.ERROR_TAG].endswith("by contract run")
        if owners.OWNER_TAG in tags:
            tags[owners.OWNER_TAG] = "OWNER"
        times = (info.start_time, info.end_time) if role in ("PARENT", "CHILD", "FAILED") else \
            (info.start_time > 0, info.end_time is None or info.end_time >= info.start_time)
        history = {key: [("nan" if math.isnan(m.value) else m.value, m.timestamp, m.step)
                         for m in sorted(client.get_metric_history(info.run_id, key), key=lambda m: m.timestamp)]
                   for key in data.metrics}
        runs[role] = {
            "name": info.run_name, "status": info.status, "user": info.user_id, "times": times,
            "lifecycle": info.lifecycle_stage,
            "artifact_uri": info.artifact_uri.replace(info.run_id, "ID").replace(location, "LOCATION"),
            "params": data.params, "tags": tags,
            "metrics": {k: "nan" if math.isnan(v) else v for k, v in data.metrics.items()}, "history": history,
            "inputs": sorted((d.dataset.name, d.dataset.digest, d.dataset.source_type, d.dataset.source,
                              d.dataset.schema, d.dataset.profile, tuple((t.key, t.value) for t in d.tags))
                             for d in run.inputs.dataset_inputs)}
    return runs


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> dict:
    """kind -> (the answers, what MLflow reads back), each from its own fresh workspace."""
    found = {}
    for kind in KINDS:
        settings, client = settings_in(tmp_path_factory, kind)
        done = operate(store_of(kind, settings), client)
        found[kind] = (done["answers"], read_back(client, done), settings)
    return found


@pytest.mark.parametrize("kind", KINDS)
def test_each_store_records_what_the_operations_say(results, kind):
    answers, runs, settings = results[kind]
    assert answers["location"] == (settings.artifact_root / "contract").as_uri()
    assert answers["ensure_again"] and answers["find_experiment"] and answers["find_missing_experiment"] is None
    assert answers["reopen"] is True and answers["reopen_missing"] is False
    assert answers["find_run"] == ("PARENT", True) and answers["find_run_missing"] is None
    assert answers["run_tags"] == {"mlflow.parentRunId": "PARENT", "k": "1", "mlflow.runName": "train"}
    assert answers["alias"] == ("2", {"run_id": "PARENT"}) and answers["alias_missing"] == (None, None)
    assert [tags["mlflow.runName"] for tags in answers["finished_run_tags"]] == ["pipeline", "train"]
    assert answers["finished_run_tags"][1] == answers["run_tags"]
    assert answers["finished_run_tags_missing"] == []
    assert answers["traced_version"] == (("1", "LOCATION/PARENT/artifacts/model"),) * 2
    assert answers["untraced_version"] == (None,) * 7
    assert set(runs) == {"JOB", "ORPHAN", "LIVE", "PARENT", "CHILD", "FAILED"}
    job = runs["JOB"]
    assert (job["name"], job["status"], job["user"], job["times"]) == ("job", "FINISHED", "alice", (True, True))
    assert job["params"] == {"alpha": "0.5", "workers": "2"}
    assert job["metrics"] == {"rows": 30.0, "spread": "nan", "rate": 7.5}
    assert job["history"]["rows"] == [(5.0, 500, 0), (10.0, 1000, 0), (30.0, 2000, 0)]
    assert job["artifact_uri"] == "LOCATION/ID/artifacts" and job["inputs"] == []
    assert runs["ORPHAN"]["status"] == "KILLED" and runs["ORPHAN"]["tags"][owners.ERROR_TAG] is True
    assert runs["LIVE"]["status"] == "RUNNING" and owners.ERROR_TAG not in runs["LIVE"]["tags"]
    parent, child = runs["PARENT"], runs["CHILD"]
    assert (parent["status"], parent["times"], child["times"]) == ("FINISHED", (1000, 5000), (1100, 4900))
    assert parent["metrics"] == {"mse": 2.5, "bad": "nan"} and parent["history"]["mse"] == [(2.5, 5000, 0)]
    assert child["tags"]["mlflow.parentRunId"] == "PARENT" and child["params"] == {"depth": "3"}
    assert parent["inputs"] == child["inputs"] == [("diabetes", "abcd1234", "local", '{"uri": "/d.csv"}',
                                                    '{"mlflow_colspec": []}', '{"num_rows": 3}',
                                                    (("mlflow.data.context", "training"),))]
    assert runs["FAILED"]["status"] == "FAILED"


def test_both_stores_leave_what_mlflow_reads_identical(results):
    mlflow_answers, mlflow_runs, _ = results["mlflow"]
    sqlite_answers, sqlite_runs, _ = results["sqlite"]
    assert {k: v for k, v in sqlite_answers.items() if k != "location"} == \
        {k: v for k, v in mlflow_answers.items() if k != "location"}
    assert sqlite_runs == mlflow_runs


def test_the_fast_path_only_for_a_finished_sqlite_store_of_a_known_revision(workspace, tmp_path):
    from ml_service.workspace.tracking import connect

    connect(workspace)
    for settings in (replace(workspace, tracking_uri="http://127.0.0.1:5000"),
                     replace(workspace, tracking_uri=f"sqlite:///{tmp_path}/none.db")):
        with open_run_store(settings) as store:
            assert isinstance(store, MlflowRunStore) and store._client is None  # nothing connected yet
    with open_run_store(workspace) as store:
        assert isinstance(store, SqliteRunStore) and not store.imports_mlflow
    ready = workspace.state_dir / "mlflow.db.ready"
    ready.rename(ready.with_suffix(".moved"))
    assert isinstance(open_run_store(workspace), MlflowRunStore)  # its creation may not have finished
    ready.with_suffix(".moved").rename(ready)
    with sqlite3.connect(workspace.tracking_uri[len("sqlite:///"):]) as db:
        db.execute("UPDATE alembic_version SET version_num = 'ffffffffffff'")
    assert isinstance(open_run_store(workspace), MlflowRunStore)  # a revision the fast path was not written for


def test_choosing_and_using_the_fast_path_imports_no_mlflow(workspace):
    from ml_service.workspace.tracking import connect

    connect(workspace)
    code = ("import sys\nfrom ml_service.config import load_settings, replace\n"
            "from ml_service.workspace.run_store import open_run_store\n"
            "settings = load_settings()\n"
            "with open_run_store(settings) as store:\n"
            "    experiment_id, _ = store.ensure_experiment('e')\n"
            "    run = store.start_run(experiment_id, 'r', {}, {'p': '1'})\n"
            "    store.log_metrics(run, {'m': 1.0}, 1)\n"
            "    store.end_run(run, 'FINISHED')\n"
            "    print(type(store).__name__, store.find_run(experiment_id, {'mlflow.runName': 'r'})[0] == run)\n"
            "open_run_store(replace(settings, tracking_uri='http://127.0.0.1:5000')).close()\n"
            "print('mlflow' in sys.modules)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["SqliteRunStore", "True", "False"]
