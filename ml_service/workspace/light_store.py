"""MLflow's embedded sqlite store, read and written without importing MLflow (2-6 s saved per command).

The one module (with light_runs.py, which writes through it) that knows MLflow's sqlite schema, reached only
through run_store.RunStore (sqlite_run_store.py). Only for what a pipeline run whose every step is reused
needs (see pipelines/noop.py), a batch job's model version (a READY version traced to a run of the project's
experiment, batch/local_store.py) and the data set registry's newest version (runs by tags): find a
reusable run, read an alias, record a finished run with its children, tags, params, metrics and
dataset inputs, end runs whose owner died. It writes the rows MLflow's own SqlAlchemyStore writes,
in one transaction, and only into a schema it knows: the store's alembic revision must be one
listed below (MLflow's pins decide it); any other store, or an MLflow server, gets None from
`open` and the caller takes the normal path through MLflow. Tests read what it wrote back through
MlflowClient.
"""
from __future__ import annotations

import math
import sqlite3
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlparse

from ml_service.config import Settings
from ml_service.workspace import owners
from ml_service.workspace.refs import ModelRef

# alembic heads of the MLflow versions this writer was checked against (mlflow 3.17.2)
KNOWN_REVISIONS = {"dc11669786a5"}
DELETED_STAGE = "Deleted_Internal"  # MLflow's stage for a deleted version it keeps in the table


@dataclass
class RunRow:
    """A run to record: what MLflow would hold after create_run, log_batch, log_inputs, set_terminated."""

    name: str
    tags: dict[str, str]
    params: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    datasets: list[dict] = field(default_factory=list)  # name, digest, source, schema, profile
    status: str = "FINISHED"
    start: int = 0
    end: int = 0
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex)


def local_path(uri: str) -> Path | None:
    """The folder of a file:// artifact URI (None for any other scheme)."""
    parsed = urlparse(uri)
    if parsed.scheme == "file":
        return Path(unquote(parsed.path))
    if parsed.scheme == "" and uri.startswith("/"):
        return Path(uri)
    return None


def embedded_database(settings: Settings) -> Path | None:
    """The database file of a sqlite:/// tracking URI (None for any other store)."""
    uri = settings.tracking_uri
    return Path(uri[len("sqlite:///"):]) if uri.startswith("sqlite:///") else None


def adopt_empty_store(database: Path, default_location: str) -> None:
    """Make a copy of an empty store (store_template.py) this workspace's: its Default experiment's artifact
    location, which MLflow set from the creating process's directory, becomes default_location, as MLflow would
    set it here. sqlite3.Error when the file holds no schema revision."""
    with sqlite3.connect(database) as db:
        if not db.execute("SELECT version_num FROM alembic_version").fetchone():
            raise sqlite3.DatabaseError("no schema revision")
        now = int(time.time() * 1000)
        db.execute("UPDATE experiments SET artifact_location = ?, creation_time = ?, last_update_time = ? "
                   "WHERE experiment_id = 0", (default_location, now, now))
    db.close()


class LightStore:
    """A connection to the embedded store, for the few reads and writes the RunStore fast path needs."""

    def __init__(self, database: Path):
        self.db = sqlite3.connect(database, timeout=60, isolation_level=None)

    @classmethod
    def open(cls, settings: Settings) -> "LightStore | None":
        """The store of settings when it is an embedded sqlite store of a known schema, else None."""
        database = embedded_database(settings)
        if database is None or not (database.exists() and database.with_name(database.name + ".ready").exists()):
            return None
        try:
            store = cls(database)
            revision = store.db.execute("SELECT version_num FROM alembic_version").fetchone()
        except sqlite3.Error:
            return None
        if not revision or revision[0] not in KNOWN_REVISIONS:
            store.close()
            return None
        return store

    def close(self) -> None:
        """Close the connection."""
        self.db.close()

    def experiment(self, name: str) -> tuple[str, str] | None:
        """(id, artifact location) of an active experiment."""
        row = self.db.execute("SELECT experiment_id, artifact_location FROM experiments "
                              "WHERE name = ? AND lifecycle_stage = 'active'", (name,)).fetchone()
        return (str(row[0]), row[1]) if row else None

    def _finished(self, columns: str, experiment_id: str, tags: dict[str, str], rest: str = "") -> list[tuple]:
        """columns of the active FINISHED runs of an experiment that have all these tags (run r)."""
        joins = " ".join(f"JOIN tags t{i} ON t{i}.run_uuid = r.run_uuid AND t{i}.key = ? AND t{i}.value = ?"
                         for i in range(len(tags)))
        values = [x for item in tags.items() for x in item]
        return self.db.execute(
            f"SELECT {columns} FROM runs r {joins} WHERE r.experiment_id = ? "
            f"AND r.status = 'FINISHED' AND r.lifecycle_stage = 'active' {rest}",
            [*values, int(experiment_id)]).fetchall()

    def artifact_location(self, experiment_id: str) -> str:
        """The artifact location of an experiment; LookupError when it is not in this store."""
        row = self.db.execute("SELECT artifact_location FROM experiments WHERE experiment_id = ?",
                              (int(experiment_id),)).fetchone()
        if row is None:
            raise LookupError(f"experiment {experiment_id} is not in this store")
        return row[0]

    def find_run(self, experiment_id: str, tags: dict[str, str]) -> tuple[str, str] | None:
        """(run id, artifact URI) of the newest active FINISHED run with all these tags."""
        rows = self._finished("r.run_uuid, r.artifact_uri", experiment_id, tags, "ORDER BY r.start_time DESC LIMIT 1")
        return (rows[0][0], rows[0][1]) if rows else None

    def finished_run_tags(self, experiment_id: str, tags: dict[str, str]) -> list[dict[str, str]]:
        """All tags of each active FINISHED run with all these tags, oldest first."""
        ids = [row[0] for row in self._finished("r.run_uuid", experiment_id, tags, "ORDER BY r.start_time")]
        return [self.run_tags(run_id) for run_id in ids]

    def run_tags(self, run_id: str) -> dict[str, str]:
        """All tags of a run."""
        return dict(self.db.execute("SELECT key, value FROM tags WHERE run_uuid = ?", (run_id,)).fetchall())

    def alias(self, model_name: str, alias: str) -> tuple[str, dict[str, str]] | None:
        """(version, its tags) that holds alias, or None."""
        row = self.db.execute("SELECT version FROM registered_model_aliases WHERE name = ? AND alias = ?",
                              (model_name, alias)).fetchone()
        if row is None:
            return None
        tags = dict(self.db.execute("SELECT key, value FROM model_version_tags WHERE name = ? AND version = ?",
                                    (model_name, row[0])).fetchall())
        return str(row[0]), tags

    def traced_version(self, ref: ModelRef, experiment: str) -> tuple[str, str] | None:
        """(version, storage location) of NAME:VERSION or NAME@ALIAS when it is READY and its files are those of a
        run of experiment (workspace/provenance.py's rule, read from the tables); None for anything else, or
        anything this cannot tell (several rows, an unreadable store): MLflow's path then decides, and refuses."""
        try:
            if ref.alias is not None:
                row = self._one("SELECT version FROM registered_model_aliases WHERE name = ? AND alias = ?",
                                (ref.name, ref.alias))
                if row is None:
                    return None
                version = str(row[0])
            elif ref.version is not None:
                version = str(ref.version)
            else:
                return None
            row = self._one("SELECT storage_location, status, current_stage FROM model_versions "
                            "WHERE name = ? AND version = ?", (ref.name, version))
            if row is None or row[1] != "READY" or row[2] == DELETED_STAGE:
                return None
            location = str(row[0] or "")
            return (version, location) if self._traced(ref.name, version, experiment, location) else None
        except (sqlite3.Error, ValueError):
            return None

    def _one(self, query: str, args: tuple):
        rows = self.db.execute(query, args).fetchall()
        return rows[0] if len(rows) == 1 else None  # none, or several (workspaces): MLflow decides

    def _traced(self, name: str, version: str, experiment: str, location: str) -> bool:
        """The version's source run is a run of experiment and location lies under that run's artifacts (or under
        a model that run logged in that experiment: MLflow 3 registers those)."""
        row = self._one("SELECT r.artifact_uri, r.run_uuid, r.experiment_id "
                        "FROM model_versions v JOIN runs r ON r.run_uuid = v.run_id "
                        "JOIN experiments e ON e.experiment_id = r.experiment_id "
                        "WHERE v.name = ? AND v.version = ? AND e.name = ?", (name, version, experiment))
        if row is None or not location or ".." in location:
            return False
        places = [str(row[0] or "")] + [str(r[0] or "") for r in self.db.execute(
            "SELECT artifact_location FROM logged_models WHERE source_run_id = ? AND experiment_id = ?",
            (row[1], row[2])).fetchall()]
        return any(place and (location == place.rstrip("/") or location.startswith(place.rstrip("/") + "/"))
                   for place in places)

    def record(self, experiment_id: str, artifact_location: str, runs: list[RunRow], found_by: str) -> None:
        """Write finished runs (parent first) in one transaction; first end runs whose owner died."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            self._end_orphans(experiment_id, found_by)
            for run in runs:
                self._insert(experiment_id, artifact_location, run)
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise

    def _insert(self, experiment_id: str, artifact_location: str, run: RunRow) -> None:
        tags = {"mlflow.runName": run.name, **run.tags}
        self.db.execute(
            "INSERT INTO runs (run_uuid, name, source_type, source_name, entry_point_name, user_id, status, "
            "start_time, end_time, source_version, lifecycle_stage, artifact_uri, experiment_id, deleted_time) "
            "VALUES (?, ?, 'UNKNOWN', '', '', ?, ?, ?, ?, '', 'active', ?, ?, NULL)",
            (run.run_id, run.name, tags.get("mlflow.user", "unknown"), run.status, run.start, run.end,
             f"{artifact_location.rstrip('/')}/{run.run_id}/artifacts", int(experiment_id)))
        self.db.executemany("INSERT OR REPLACE INTO tags (key, value, run_uuid) VALUES (?, ?, ?)",
                            [(k, str(v), run.run_id) for k, v in tags.items()])
        self.db.executemany("INSERT INTO params (key, value, run_uuid) VALUES (?, ?, ?)",
                            [(k, str(v), run.run_id) for k, v in run.params.items()])
        for key, value in run.metrics.items():
            nan = math.isnan(value)
            row = (key, 0.0 if nan else float(value), run.end, 0, int(nan), run.run_id)
            self.db.execute("INSERT OR REPLACE INTO metrics (key, value, timestamp, step, is_nan, run_uuid) "
                            "VALUES (?, ?, ?, ?, ?, ?)", row)
            self.db.execute("INSERT OR REPLACE INTO latest_metrics (key, value, timestamp, step, is_nan, run_uuid) "
                            "VALUES (?, ?, ?, ?, ?, ?)", row)
        for dataset in run.datasets:
            self._input(experiment_id, run.run_id, dataset)

    def _input(self, experiment_id: str, run_id: str, dataset: dict) -> None:
        found = self.db.execute("SELECT dataset_uuid FROM datasets WHERE experiment_id = ? AND name = ? AND digest = ?",
                                (int(experiment_id), dataset["name"], dataset["digest"])).fetchone()
        if found:
            dataset_id = found[0]
        else:
            dataset_id = uuid.uuid4().hex
            self.db.execute("INSERT INTO datasets (dataset_uuid, experiment_id, name, digest, dataset_source_type, "
                            "dataset_source, dataset_schema, dataset_profile) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                            (dataset_id, int(experiment_id), dataset["name"], dataset["digest"],
                             dataset["source_type"], dataset["source"], dataset["schema"], dataset["profile"]))
        input_id = uuid.uuid4().hex
        self.db.execute("INSERT OR IGNORE INTO inputs (input_uuid, source_type, source_id, destination_type, "
                        "destination_id, step) VALUES (?, 'DATASET', ?, 'RUN', ?, 0)", (input_id, dataset_id, run_id))
        self.db.execute("INSERT OR IGNORE INTO input_tags (input_uuid, name, value) VALUES (?, ?, ?)",
                        (input_id, "mlflow.data.context", dataset.get("context", "training")))

    def _end_orphans(self, experiment_id: str, found_by: str) -> None:
        rows = self.db.execute(
            "SELECT r.run_uuid, t.value FROM runs r JOIN tags t ON t.run_uuid = r.run_uuid AND t.key = ? "
            "WHERE r.experiment_id = ? AND r.status = 'RUNNING'", (owners.OWNER_TAG, int(experiment_id))).fetchall()
        now = int(time.time() * 1000)
        for run_id, owner in rows:
            if owners.owner_is_gone(owner):
                self.db.execute("UPDATE runs SET status = 'KILLED', end_time = ? WHERE run_uuid = ?", (now, run_id))
                self.db.execute("INSERT OR REPLACE INTO tags (key, value, run_uuid) VALUES (?, ?, ?)",
                                (owners.ERROR_TAG, owners.orphan_reason(owner, found_by), run_id))
