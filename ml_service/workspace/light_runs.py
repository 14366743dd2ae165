"""A run of the embedded sqlite store started, logged to and ended without importing MLflow.

`light_store` records runs that are finished when they are written (a no-op pipeline run). A batch job's
run lives while the job scores: it is started RUNNING with its tags and params, reopened when a killed job
resumes, given its metrics and ended. Importing MLflow for that costs about 2 s of CPU, as much as scoring
a few hundred thousand rows on a 2-core machine; these few rows cost milliseconds. Each function writes the
rows MlflowClient writes for the same call (create_experiment, create_run + log_batch, update_run,
log_batch, set_terminated), in one transaction, and only through a `LightStore` (an embedded store of a
schema it knows); an answer of None means "ask MLflow" (a deleted experiment, a name held twice).
Tests read what it wrote back through MlflowClient, and compare it with what MLflow writes.
"""
from __future__ import annotations

import math
import sqlite3
import time
import uuid

from ml_service.workspace.light_store import LightStore

RUN_NAME_TAG = "mlflow.runName"
USER_TAG = "mlflow.user"


def _now() -> int:
    return int(time.time() * 1000)


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT (ROLLBACK on any error): one writer at a time, as MLflow's sqlite store."""

    def __init__(self, store: LightStore):
        self.db = store.db

    def __enter__(self) -> sqlite3.Connection:
        self.db.execute("BEGIN IMMEDIATE")
        return self.db

    def __exit__(self, kind, *rest) -> None:
        self.db.execute("COMMIT" if kind is None else "ROLLBACK")


def experiment(store: LightStore, name: str, location: str) -> tuple[str, str] | None:
    """(id, artifact location) of the experiment `name`, created at location when there is none (as
    `MlflowClient.create_experiment(name, artifact_location=location)`); None when MLflow must decide
    (the experiment is deleted, or the name is held more than once)."""
    query = "SELECT experiment_id, artifact_location, lifecycle_stage FROM experiments WHERE name = ?"
    with _Transaction(store) as db:
        rows = db.execute(query, (name,)).fetchall()
        if not rows:
            now = _now()
            db.execute("INSERT INTO experiments (name, artifact_location, lifecycle_stage, creation_time, "
                       "last_update_time) VALUES (?, ?, 'active', ?, ?)", (name, location, now, now))
            rows = db.execute(query, (name,)).fetchall()
    if len(rows) != 1 or rows[0][2] != "active":
        return None
    return str(rows[0][0]), rows[0][1]


def start_run(store: LightStore, experiment_id: str, artifact_location: str, name: str, tags: dict[str, str],
              params: dict[str, str]) -> str:
    """A new RUNNING run with tags and params (`create_run(..., tags, run_name=name)`, then `log_batch`); its id."""
    run_id = uuid.uuid4().hex
    tags = {**tags, RUN_NAME_TAG: name}
    with _Transaction(store) as db:
        db.execute(
            "INSERT INTO runs (run_uuid, name, source_type, source_name, entry_point_name, user_id, status, "
            "start_time, end_time, source_version, lifecycle_stage, artifact_uri, experiment_id, deleted_time) "
            "VALUES (?, ?, 'UNKNOWN', '', '', ?, 'RUNNING', ?, NULL, '', 'active', ?, ?, NULL)",
            (run_id, name, tags.get(USER_TAG, "unknown"), _now(),
             f"{artifact_location.rstrip('/')}/{run_id}/artifacts", int(experiment_id)))
        db.executemany("INSERT INTO tags (key, value, run_uuid) VALUES (?, ?, ?)",
                       [(key, str(value), run_id) for key, value in tags.items()])
        db.executemany("INSERT INTO params (key, value, run_uuid) VALUES (?, ?, ?)",
                       [(key, str(value), run_id) for key, value in params.items()])
    return run_id


def reopen_run(store: LightStore, run_id: str) -> bool:
    """Set an active run RUNNING again (`update_run(run_id, status="RUNNING")`); False when there is no
    such active run (MLflow would raise)."""
    with _Transaction(store) as db:
        changed = db.execute("UPDATE runs SET status = 'RUNNING' WHERE run_uuid = ? AND lifecycle_stage = 'active'",
                             (run_id,)).rowcount
    return changed == 1


def log_metrics(store: LightStore, run_id: str, metrics: dict[str, float], timestamp: int) -> None:
    """`log_batch(run_id, metrics=[Metric(key, value, timestamp, 0), ...])`: each value kept, and the latest
    one a key replaced when this one is newer by (step, timestamp, value), as MLflow decides."""
    with _Transaction(store) as db:
        _active(db, run_id)
        for key, value in metrics.items():
            nan = math.isnan(value)
            row = (key, 0.0 if nan else float(value), timestamp, 0, int(nan), run_id)
            db.execute("INSERT OR IGNORE INTO metrics (key, value, timestamp, step, is_nan, run_uuid) "
                       "VALUES (?, ?, ?, ?, ?, ?)", row)
            latest = db.execute("SELECT step, timestamp, value FROM latest_metrics WHERE run_uuid = ? AND key = ?",
                                (run_id, key)).fetchone()
            if latest is None or (0, timestamp, row[1]) > tuple(latest):
                db.execute("INSERT OR REPLACE INTO latest_metrics (key, value, timestamp, step, is_nan, run_uuid) "
                           "VALUES (?, ?, ?, ?, ?, ?)", row)


def end_run(store: LightStore, run_id: str, status: str) -> None:
    """`set_terminated(run_id, status)`: the status and the end time (now)."""
    with _Transaction(store) as db:
        _active(db, run_id)
        db.execute("UPDATE runs SET status = ?, end_time = ? WHERE run_uuid = ?", (status, _now(), run_id))


def _active(db: sqlite3.Connection, run_id: str) -> None:
    row = db.execute("SELECT lifecycle_stage FROM runs WHERE run_uuid = ?", (run_id,)).fetchone()
    if row is None or row[0] != "active":
        raise LookupError(f"run {run_id} is not an active run of this store")
