"""MLflow wiring of a workspace (workspace/tracking.py), against real MLflow sqlite stores in temp dirs.

Dataset inputs: runs that record the same dataset at the same moment all record it (found by CI: 4 retrains at
once). MLflow's SQL store looks a dataset up and then inserts it, so two writers can both miss it and the second
insert breaks the unique key; `log_inputs` retries, and the retry finds the row. The writers are lined up by a
barrier at MLflow's own INSERT (each has looked the dataset up and missed it), not by sleeping."""
from __future__ import annotations

import sqlite3
import threading

import pytest

from ml_service.workspace import tracking
from ml_service.workspace.datasets import dataset_input, describe_csv
from tests.conftest import fresh_store

pytestmark = pytest.mark.integration

WRITERS = 6


def test_writers_recording_one_dataset_together_all_succeed_and_share_one_row(tmp_path):
    import mlflow
    from sqlalchemy import event

    uri = fresh_store(tmp_path / "mlflow.db")
    client = mlflow.MlflowClient(tracking_uri=uri)
    experiment = client.create_experiment("race", artifact_location=(tmp_path / "artifacts").as_uri())
    csv = tmp_path / "table.csv"
    csv.write_text("a,b\n1,2\n3,4\n")
    runs = [client.create_run(experiment).info.run_id for _ in range(WRITERS)]
    entry, _ = dataset_input(csv, "table")
    barrier = threading.Barrier(WRITERS, timeout=120)
    inserts = []

    def line_up(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("INSERT INTO DATASETS"):
            inserts.append(threading.get_ident())
            if inserts.count(threading.get_ident()) == 1:
                barrier.wait()  # every writer has looked the dataset up, and missed it, before any inserts it

    engine = client._tracking_client.store.engine
    errors: dict[str, BaseException] = {}

    def write(run_id: str) -> None:
        try:
            tracking.log_inputs(client, run_id, [entry])
        except BaseException as exc:  # reported below, with the run
            errors[run_id] = exc

    event.listen(engine, "before_cursor_execute", line_up)
    try:
        threads = [threading.Thread(target=write, args=(run_id,)) for run_id in runs]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(300)
    finally:
        event.remove(engine, "before_cursor_execute", line_up)
    assert errors == {}
    assert len(inserts) == WRITERS and not barrier.broken  # the race happened: every writer tried to insert it
    for run_id in runs:
        inputs = client.get_run(run_id).inputs.dataset_inputs
        assert [(i.dataset.name, i.dataset.digest) for i in inputs] == [("table", describe_csv(csv)["digest"])]
    with sqlite3.connect(tmp_path / "mlflow.db") as db:
        assert db.execute("select count(*) from datasets").fetchone() == (1,)


def test_a_dataset_logging_error_other_than_the_race_is_raised_at_once(tmp_path, monkeypatch):
    import mlflow
    from mlflow.exceptions import MlflowException

    uri = fresh_store(tmp_path / "mlflow.db")
    client = mlflow.MlflowClient(tracking_uri=uri)
    run_id = client.create_run(client.create_experiment("e")).info.run_id
    client.delete_run(run_id)
    csv = tmp_path / "t.csv"
    csv.write_text("a\n1\n")
    calls = []
    real = client.log_inputs
    monkeypatch.setattr(client, "log_inputs", lambda *a, **k: calls.append(1) or real(*a, **k))
    with pytest.raises(MlflowException):
        tracking.log_inputs(client, run_id, [dataset_input(csv, "t")[0]])
    assert len(calls) == 1  # not retried: only the unique-key race is


def test_an_experiment_is_created_under_the_artifact_root_and_a_deleted_one_restored(workspace):
    client = tracking.connect(workspace)
    made = tracking.ensure_experiment(client, workspace, "fresh")
    found = client.get_experiment(made)
    assert found.name == "fresh" and found.artifact_location == (workspace.artifact_root / "fresh").as_uri()
    assert tracking.ensure_experiment(client, workspace, "fresh") == made
    client.delete_experiment(made)
    assert tracking.ensure_experiment(client, workspace, "fresh") == made
    assert client.get_experiment(made).lifecycle_stage == "active"
    assert client.get_experiment(tracking.ensure_experiment(client, workspace)).name == workspace.experiment


def test_a_store_whose_creation_never_finished_is_created_again_and_marked_ready(workspace):
    """A killed first process can leave mlflow.db without its `.ready` mark: it is not trusted as it is."""
    database = workspace.state_dir / "mlflow.db"
    workspace.state_dir.mkdir(parents=True)
    database.write_bytes(b"")
    assert workspace.tracking_uri == f"sqlite:///{database}"
    client = tracking.connect(workspace)
    assert (workspace.state_dir / "mlflow.db.ready").read_text() == "created by MLflow\n"
    assert client.get_experiment("0").name == "Default"
    with sqlite3.connect(database) as db:
        assert db.execute("SELECT version_num FROM alembic_version").fetchone()
