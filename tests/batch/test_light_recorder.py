"""A batch job's run recorded without MLflow (light_recorder.py) is the run MLflow records: the same rows in
the store, the same Run through a real MlflowClient (record.py through either RunStore); a store that needs
MLflow's own decision gets MLflow; recording.open_recorder takes it only for the sqlite fast path."""
from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from ml_service.batch import record
from ml_service.batch.job import JobSpec
from ml_service.batch.light_recorder import LightRecorder
from ml_service.batch.recording import BatchRecorder, open_recorder
from ml_service.workspace.mlflow_run_store import MlflowRunStore

SPEC = JobSpec(model="m@champion", input=Path("/data/in.csv"), output=Path("/data/out"), workers=2, chunk_rows=500)
MANIFEST = {"model_name": "m", "model_version": "3", "input_digest": "ab" * 32, "chunk_rows": 500}
# a killed attempt (its run left RUNNING), then the resumed attempt, which finishes
FOUND = ("m", "3", Path("/models/m/3"))  # the model version, as local_store.find found it without MLflow
ATTEMPTS = (({"rows": 1000, "scored": 990, "rejected": 10}, 2.5, 990, True),
            ({"rows": 3000, "scored": 2970, "rejected": 30}, 4.0, 1980, False))


@pytest.fixture
def client(workspace):
    from ml_service.workspace.tracking import connect

    return connect(workspace)  # the embedded store, created as every command creates it


def status(settings, run_id: str) -> str:
    db = sqlite3.connect(settings.tracking_uri[len("sqlite:///"):])
    found = db.execute("SELECT status FROM runs WHERE run_uuid = ?", (run_id,)).fetchone()[0]
    db.close()
    return found


def with_mlflow(client, settings, statuses: list | None = None) -> str:
    manifest, store = dict(MANIFEST), MlflowRunStore(settings, client)
    for totals, seconds, scored_now, failed in ATTEMPTS:
        manifest["run_id"] = record.start(store, settings, manifest, SPEC)
        record.finish(store, manifest["run_id"], totals, seconds, scored_now, failed)
        (statuses if statuses is not None else []).append(status(settings, manifest["run_id"]))
    return manifest["run_id"]


def without_mlflow(settings, statuses: list | None = None) -> str:
    manifest = dict(MANIFEST)
    with light(settings) as recorder:
        for totals, seconds, scored_now, failed in ATTEMPTS:
            recorder.send("start", dict(manifest), SPEC)
            assert recorder.answered()
            manifest["run_id"] = recorder.receive()
            recorder.call("finish", manifest["run_id"], totals, seconds, scored_now, failed)
            (statuses if statuses is not None else []).append(status(settings, manifest["run_id"]))
        assert recorder.mlflow is None
    return manifest["run_id"]


def light(settings) -> LightRecorder:
    recorder = open_recorder(settings, FOUND)
    assert isinstance(recorder, LightRecorder), recorder
    return recorder


def rows(settings, run_id: str) -> dict:
    """Every row of the run in the store, its id and times left out (they differ between two runs)."""
    db = sqlite3.connect(settings.tracking_uri[len("sqlite:///"):])
    run = db.execute("SELECT name, source_type, source_name, entry_point_name, user_id, status, source_version, "
                     "lifecycle_stage, replace(artifact_uri, run_uuid, 'ID'), experiment_id, deleted_time, "
                     "start_time > 0, end_time >= start_time FROM runs WHERE run_uuid = ?", (run_id,)).fetchall()
    found = {"runs": run}
    for table, columns in (("tags", "key, value"), ("params", "key, value"),
                           ("metrics", "key, value, step, is_nan"), ("latest_metrics", "key, value, step, is_nan")):
        found[table] = sorted(db.execute(f"SELECT {columns} FROM {table} WHERE run_uuid = ?", (run_id,)).fetchall())
    found["inputs"] = db.execute("SELECT count(*) FROM inputs WHERE destination_id = ?", (run_id,)).fetchall()
    db.close()
    return found


def test_the_run_is_the_rows_mlflow_writes(workspace, client):
    light_statuses, reference_statuses = [], []
    light = without_mlflow(workspace, light_statuses)  # first: it creates the batch experiment
    reference = with_mlflow(client, workspace, reference_statuses)
    assert rows(workspace, light) == rows(workspace, reference)
    assert light_statuses == reference_statuses == ["FAILED", "FINISHED"]
    assert len(rows(workspace, light)["metrics"]) == 10 and len(rows(workspace, light)["params"]) == 9


def test_the_run_reads_back_through_mlflow_as_a_finished_batch_run(workspace, client):
    run_id = without_mlflow(workspace)
    run = client.get_run(run_id)
    experiment = client.get_experiment(run.info.experiment_id)
    assert experiment.name == record.EXPERIMENT and experiment.lifecycle_stage == "active"
    assert experiment.artifact_location == (workspace.artifact_root / record.EXPERIMENT).as_uri()
    assert run.info.status == "FINISHED" and run.info.run_name == "batch: m v3" and run.info.end_time
    assert run.info.artifact_uri == f"{experiment.artifact_location}/{run_id}/artifacts"
    assert run.data.params == {"model": "m@champion", "model_name": "m", "model_version": "3",
                               "input": "/data/in.csv", "input_digest": MANIFEST["input_digest"],
                               "output": "/data/out", "workers": "2", "chunk_rows": "500",
                               "max_reject_fraction": "0.01"}
    assert run.data.metrics == {"rows_in": 3000, "rows_scored": 2970, "rows_rejected": 30, "duration_s": 4.0,
                                "rows_per_s": 495.0}  # the latest attempt's values
    assert [m.value for m in client.get_metric_history(run_id, "rows_in")] == [1000, 3000]
    assert {k: v for k, v in run.data.tags.items()} == {
        "mlops.kind": "batch", "model_name": "m", "model_version": "3", "mlops.model.project": workspace.project,
        "mlflow.runName": "batch: m v3"}
    assert [r.info.run_id for r in client.search_runs([experiment.experiment_id])] == [run_id]


def test_the_experiment_is_the_row_mlflow_writes(workspace, client):
    from ml_service.workspace.tracking import ensure_experiment

    without_mlflow(workspace)
    ensure_experiment(client, workspace, "made-by-mlflow")
    db = sqlite3.connect(workspace.tracking_uri[len("sqlite:///"):])
    made = db.execute("SELECT name, replace(artifact_location, name, 'NAME'), lifecycle_stage, workspace, "
                      "creation_time = last_update_time, creation_time > 0 FROM experiments "
                      "WHERE name IN (?, ?) ORDER BY name = ?", (record.EXPERIMENT, "made-by-mlflow",
                                                                 "made-by-mlflow")).fetchall()
    tags = db.execute("SELECT count(*) FROM experiment_tags").fetchone()
    db.close()
    assert made[0][1:] == made[1][1:] and tags == (0,)


def test_a_run_gone_from_the_store_is_started_again(workspace, client):
    first = without_mlflow(workspace)
    client.delete_run(first)
    with light(workspace) as recorder:
        second = recorder.call("start", {**MANIFEST, "run_id": first}, SPEC)
    assert second != first and client.get_run(second).info.status == "RUNNING"


def test_a_deleted_experiment_is_left_to_mlflow_which_restores_it(workspace, client):
    without_mlflow(workspace)
    experiment = client.get_experiment_by_name(record.EXPERIMENT)
    client.delete_experiment(experiment.experiment_id)
    with light(workspace) as recorder:
        run_id = recorder.call("start", dict(MANIFEST), SPEC)
        recorder.call("finish", run_id, *ATTEMPTS[1])
        assert recorder.mlflow is not None
    assert client.get_experiment(experiment.experiment_id).lifecycle_stage == "active"
    assert client.get_run(run_id).info.status == "FINISHED"
    assert client.get_run(run_id).data.metrics["rows_in"] == 3000


def test_a_run_that_cannot_be_finished_is_a_batch_error(workspace, client):
    from ml_service.batch import BatchError

    with light(workspace) as recorder:
        with pytest.raises(BatchError, match="not an active run"):
            recorder.call("finish", "0" * 32, *ATTEMPTS[1])
        run_id = recorder.call("start", dict(MANIFEST), SPEC)
        client.delete_run(run_id)
        with pytest.raises(LookupError, match="not an active run"):  # as MLflow's set_terminated raises
            recorder.store.end_run(run_id, "FINISHED")


def test_other_stores_and_versions_found_by_mlflow_are_left_to_mlflow(workspace, client, tmp_path):
    from ml_service.batch.recorder import Recorder
    from ml_service.config import replace

    for settings, found in ((replace(workspace, tracking_uri="http://127.0.0.1:5000"), FOUND),
                            (replace(workspace, tracking_uri=f"sqlite:///{tmp_path}/none.db"), FOUND),
                            (workspace, None)):
        with open_recorder(settings, found) as recorder:
            assert isinstance(recorder, Recorder) and recorder.process.is_alive()
            assert isinstance(recorder, BatchRecorder)
    with open_recorder(workspace, FOUND) as recorder:
        assert isinstance(recorder, LightRecorder) and isinstance(recorder, BatchRecorder)


def test_an_older_or_nan_value_is_kept_as_mlflow_keeps_it(workspace, client):
    from mlflow.entities import Metric

    from ml_service.workspace import light_runs
    from ml_service.workspace.light_store import LightStore

    light, reference = without_mlflow(workspace), with_mlflow(client, workspace)
    store = LightStore.open(workspace)
    light_runs.log_metrics(store, light, {"rows_in": 5.0, "spread": float("nan")}, 1000)
    store.close()
    client.log_batch(reference, metrics=[Metric("rows_in", 5.0, 1000, 0), Metric("spread", float("nan"), 1000, 0)])
    assert rows(workspace, light) == rows(workspace, reference)
    assert client.get_run(light).data.metrics["rows_in"] == 3000  # an older value is history, not the latest


def test_the_metrics_are_stamped_in_milliseconds_at_the_finish_through_either_store(workspace, client):
    import time

    before = int(time.time() * 1000)
    runs = (without_mlflow(workspace), with_mlflow(client, workspace))
    after = int(time.time() * 1000)
    for run_id in runs:
        stamps = [m.timestamp for m in client.get_metric_history(run_id, "duration_s")]
        assert len(stamps) == 2 and all(before <= stamp <= after for stamp in stamps), (stamps, before, after)


def test_the_rate_is_rows_over_seconds_and_zero_without_time():
    """Both sides of `seconds > 0`: no time measured gives a rate of 0, never a division by zero."""
    totals = {"rows": 10, "scored": 10, "rejected": 0}
    assert record.metrics(totals, 0.0, 0)["rows_per_s"] == 0.0
    assert record.metrics(totals, 2.0, 10)["rows_per_s"] == 5.0


def test_the_mlflow_process_is_never_forked_while_another_thread_runs(workspace):
    """A fork while another thread holds a lock (MLflow's, logging's) can leave the child waiting forever: with a
    second thread alive the MLflow process is spawned, and it answers."""
    import threading
    from multiprocessing.context import SpawnProcess

    from ml_service.batch.recorder import Recorder

    stop = threading.Event()
    other = threading.Thread(target=stop.wait, daemon=True)
    other.start()
    try:
        with Recorder(workspace) as recorder:
            assert isinstance(recorder.process, SpawnProcess), type(recorder.process)
            run_id = recorder.call("start", dict(MANIFEST), SPEC)
        assert status(workspace, run_id) == "RUNNING"
    finally:
        stop.set()
        other.join()


def test_the_light_run_and_experiment_are_stamped_in_milliseconds_as_mlflow_stamps_them(workspace, client):
    import time

    before = int(time.time() * 1000)
    run = client.get_run(without_mlflow(workspace))
    after = int(time.time() * 1000)
    assert before <= run.info.start_time <= run.info.end_time <= after, (before, run.info, after)
    experiment = client.get_experiment(run.info.experiment_id)
    assert before <= experiment.creation_time <= experiment.last_update_time <= after
