"""The embedded store read and written without MLflow (workspace/light_store.py): only a sqlite store MLflow
finished creating, of a schema revision it knows; the newest FINISHED, active run with every tag asked for; an
alias's version; finished runs recorded in one transaction, after ending KILLED the runs whose owner is gone.
What it writes is read back through MlflowClient. Real MLflow sqlite stores in temp dirs."""
from __future__ import annotations

import sqlite3
import subprocess

import pytest

from ml_service.config import replace
from ml_service.workspace import owners, tracking
from ml_service.workspace.light_store import LightStore, RunRow, local_path

pytestmark = pytest.mark.integration


@pytest.fixture
def client(workspace):
    return tracking.connect(workspace)


def database(settings):
    return settings.tracking_uri[len("sqlite:///"):]


def test_only_a_finished_store_of_a_known_schema_is_opened(workspace, client):
    store = LightStore.open(workspace)
    assert store is not None
    store.close()
    assert LightStore.open(replace(workspace, tracking_uri="http://127.0.0.1:5000")) is None
    ready = workspace.state_dir / "mlflow.db.ready"
    ready.rename(ready.with_suffix(".moved"))
    assert LightStore.open(workspace) is None  # its creation may not have finished
    ready.with_suffix(".moved").rename(ready)
    with sqlite3.connect(database(workspace)) as db:
        db.execute("UPDATE alembic_version SET version_num = 'ffffffffffff'")
    assert LightStore.open(workspace) is None  # a schema this writer was not checked against


def test_find_run_is_the_newest_finished_active_run_with_every_tag(workspace, client):
    experiment = tracking.ensure_experiment(client, workspace)
    tags = {"k": "1", "executed": "true"}

    def run(start: int, status: str = "FINISHED", **extra) -> str:
        found = client.create_run(experiment, start_time=start, tags={**tags, **extra}).info.run_id
        if status != "RUNNING":
            client.set_terminated(found, status)
        return found

    run(1000)
    newest = run(2000)
    run(3000, status="FAILED")
    run(4000, status="RUNNING")
    run(5000, status="KILLED")
    client.delete_run(run(6000))
    client.create_run(experiment, start_time=7000, tags={"k": "1"})  # one tag missing
    store = LightStore.open(workspace)
    try:
        found = store.find_run(experiment, tags)
        assert found == (newest, client.get_run(newest).info.artifact_uri)
        assert store.find_run(experiment, {"k": "2", "executed": "true"}) is None
        assert store.run_tags(newest)["k"] == "1"
        assert store.experiment(workspace.experiment) == (experiment, client.get_experiment(experiment)
                                                          .artifact_location)
        assert store.experiment("no such experiment") is None
    finally:
        store.close()


def test_alias_is_the_version_holding_it_with_its_tags(workspace, client):
    client.create_registered_model("m")
    for _ in range(2):
        client.create_model_version("m", workspace.artifact_root.as_uri(), tags={"run_id": "r"})
    client.set_registered_model_alias("m", "champion", "2")
    store = LightStore.open(workspace)
    try:
        assert store.alias("m", "champion") == ("2", {"run_id": "r"})
        assert store.alias("m", "qa") is None and store.alias("other", "champion") is None
    finally:
        store.close()


def test_record_ends_orphans_killed_then_writes_runs_mlflow_reads_back(workspace, client):
    experiment = tracking.ensure_experiment(client, workspace)
    process = subprocess.Popen(["sleep", "600"])
    gone = owners.owner_tag(process.pid)
    process.kill()
    process.wait()
    orphan = client.create_run(experiment, tags={owners.OWNER_TAG: gone}).info.run_id
    live = client.create_run(experiment, tags={owners.OWNER_TAG: owners.owner_tag()}).info.run_id
    ended = client.create_run(experiment, tags={owners.OWNER_TAG: gone}).info.run_id
    client.set_terminated(ended, "FINISHED")
    location = client.get_experiment(experiment).artifact_location
    parent = RunRow("p", {"kind": "pipeline"}, params={"alpha": "1"}, metrics={"m": 2.5, "bad": float("nan")},
                    start=1000, end=2000)
    child = RunRow("c", {"mlflow.parentRunId": parent.run_id}, status="FINISHED", start=1100, end=1900,
                   datasets=[{"name": "d", "digest": "abcd1234", "source_type": "local", "source": "{}",
                              "schema": "{}", "profile": "{}"}])
    store = LightStore.open(workspace)
    try:
        store.record(experiment, location, [parent, child], "pipeline run X")
    finally:
        store.close()
    assert client.get_run(orphan).info.status == "KILLED"
    assert client.get_run(orphan).data.tags[owners.ERROR_TAG].endswith("by pipeline run X")
    assert client.get_run(live).info.status == "RUNNING" and client.get_run(ended).info.status == "FINISHED"
    read = client.get_run(parent.run_id)
    assert (read.info.status, read.info.start_time, read.info.end_time) == ("FINISHED", 1000, 2000)
    assert read.data.tags["kind"] == "pipeline" and read.data.tags["mlflow.runName"] == "p"
    assert read.data.params == {"alpha": "1"} and read.data.metrics["m"] == 2.5
    assert read.info.artifact_uri == f"{location}/{parent.run_id}/artifacts"
    assert local_path(read.info.artifact_uri) is not None
    kid = client.get_run(child.run_id)
    assert [(d.dataset.name, d.dataset.digest) for d in kid.inputs.dataset_inputs] == [("d", "abcd1234")]
    assert local_path("http://host/x") is None and str(local_path("/a/b")) == "/a/b"
