"""The model version of a batch job found in the embedded workspace without importing MLflow.

`import mlflow` costs about 2 s of CPU, on a 2-core machine as much as scoring a few hundred thousand rows.
When the workspace's run store is the sqlite fast path (workspace/run_store.py chose it) and the version's files
live in a local artifact folder, the job asks the store for the version (RunStore.traced_version: READY, and
traced to a run of the project's experiment) and loads the model from its folder in place (nothing is copied),
so scoring starts at once; MLflow then only records the run, in the job's other process, meanwhile. Anything
else (a tracking server, a remote artifact store, a store the fast path does not know, a name or alias that is
not found) returns None, and the job asks MLflow, whose answer (or error message) is the reference.
"""
from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlparse

from ml_service.batch.model import check_ref
from ml_service.workspace.refs import ModelRefError, parse_model_ref


def _folder(storage_location: str | None) -> Path | None:
    """The local folder of a file:// (or plain path) storage location holding an MLmodel file."""
    if not storage_location:
        return None
    parsed = urlparse(storage_location)
    if parsed.scheme not in ("file", "") or parsed.netloc not in ("", "localhost"):
        return None
    folder = Path(unquote(parsed.path))
    return folder if (folder / "MLmodel").is_file() else None


def find(settings, ref: str) -> tuple[str, str, Path] | None:
    """(name, version, model folder) of NAME@ALIAS or NAME:VERSION in the embedded store, when its source run is a
    run of settings' experiment (the project's) and its files are that run's; None when this cannot be answered
    here without MLflow (MLflow's path then checks the version's provenance and refuses an untraced one)."""
    from ml_service.workspace.run_store import open_run_store

    if not settings.experiment:
        return None
    try:
        parse_model_ref(ref)
    except ModelRefError:
        return None  # no reference: left to MLflow's path, which refuses it with the reason
    parsed = check_ref(ref)
    with open_run_store(settings) as store:
        if store.imports_mlflow:
            return None
        found = store.traced_version(parsed, settings.experiment)
    if found is None:
        return None
    folder = _folder(found[1])
    return (parsed.name, found[0], folder) if folder is not None else None
