"""The model version of a batch job found in a local MLflow store without importing MLflow.

`import mlflow` costs about 2 s of CPU, on a 2-core machine as much as scoring a few hundred thousand rows.
When the workspace is the embedded one (a sqlite tracking store whose model versions live in a local
artifact folder), the job reads the registry tables read-only with the standard library and loads the model
from its folder in place (nothing is copied), so scoring starts at once; MLflow then only records the run, in
the job's other process, meanwhile. Anything else (a tracking server, a remote artifact store, a schema this
code does not know, a name or alias that is not found) returns None, and the job asks MLflow, whose answer
(or error message) is the reference.
"""
from __future__ import annotations

import sqlite3
from pathlib import Path
from urllib.parse import unquote, urlparse

from ml_service.batch.model import check_ref
from ml_service.workspace.refs import ModelRefError, parse_model_ref

DELETED = "Deleted_Internal"  # MLflow's stage for a deleted version it keeps in the table


def _database(tracking_uri: str) -> Path | None:
    if not tracking_uri.startswith("sqlite:///"):
        return None
    path = Path(tracking_uri[len("sqlite:///"):])
    return path if path.is_file() else None


def _folder(storage_location: str | None) -> Path | None:
    """The local folder of a file:// (or plain path) storage location holding an MLmodel file."""
    if not storage_location:
        return None
    parsed = urlparse(storage_location)
    if parsed.scheme not in ("file", "") or parsed.netloc not in ("", "localhost"):
        return None
    folder = Path(unquote(parsed.path))
    return folder if (folder / "MLmodel").is_file() else None


def _one(connection, query: str, args: tuple):
    rows = connection.execute(query, args).fetchall()
    return rows[0] if len(rows) == 1 else None  # none, or several (workspaces): MLflow decides


def _traced(connection, name: str, version: str, experiment: str, storage_location: str) -> bool:
    """The provenance rule of workspace/provenance.py, read from the tables: the version's source run is a run
    of experiment and its files lie under that run's artifacts (else MLflow's path decides, and refuses)."""
    row = _one(connection, "SELECT r.artifact_uri, r.run_uuid, r.experiment_id "
                           "FROM model_versions v JOIN runs r ON r.run_uuid = v.run_id "
                           "JOIN experiments e ON e.experiment_id = r.experiment_id "
                           "WHERE v.name = ? AND v.version = ? AND e.name = ?", (name, version, experiment))
    if row is None or ".." in storage_location:
        return False
    # the run's artifacts, or a logged model that run logged in that experiment (MLflow 3 registers those)
    places = [str(row[0] or "")] + [str(r[0] or "") for r in connection.execute(
        "SELECT artifact_location FROM logged_models WHERE source_run_id = ? AND experiment_id = ?",
        (row[1], row[2])).fetchall()]
    return any(place and (storage_location == place.rstrip("/") or
                          storage_location.startswith(place.rstrip("/") + "/")) for place in places)


def find(tracking_uri: str, ref: str, experiment: str = "") -> tuple[str, str, Path] | None:
    """(name, version, model folder) of NAME@ALIAS or NAME:VERSION in a local sqlite store, when its source run is
    a run of experiment (the project's) and its files are that run's; None when this cannot be answered here
    without MLflow (MLflow's path then checks the version's provenance and refuses an untraced one)."""
    if not experiment:
        return None
    database = _database(tracking_uri)
    if database is None:
        return None
    try:
        parse_model_ref(ref)
    except ModelRefError:
        return None  # no reference: left to MLflow's path, which refuses it with the reason
    parsed = check_ref(ref)
    try:
        connection = sqlite3.connect(f"{database.resolve().as_uri()}?mode=ro", uri=True, timeout=5)
    except sqlite3.Error:
        return None
    try:
        name = parsed.name
        if parsed.alias is not None:
            row = _one(connection, "SELECT version FROM registered_model_aliases WHERE name = ? AND alias = ?",
                       (name, parsed.alias))
            if row is None:
                return None
            version = str(row[0])
        else:
            version = str(parsed.version)
        row = _one(connection, "SELECT storage_location, status, current_stage FROM model_versions "
                               "WHERE name = ? AND version = ?", (name, version))
        if row is not None and not _traced(connection, name, version, experiment, str(row[0] or "")):
            return None
    except (sqlite3.Error, ValueError):
        return None
    finally:
        connection.close()
    if row is None or row[1] != "READY" or row[2] == DELETED:
        return None
    folder = _folder(row[0])
    return (name, version, folder) if folder is not None else None
