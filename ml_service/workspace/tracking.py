"""MLflow wiring for a workspace. MLflow is imported here, lazily, never at CLI start-up."""
from __future__ import annotations

import os
import time
from pathlib import Path

from ml_service.config import Settings
from ml_service.errors import MLOpsError

_ANSWERED: set[str] = set()  # servers that answered in this process: asked once


class ServerDownError(MLOpsError):
    """The workspace's MLflow server does not answer."""


def is_local_store(settings: Settings) -> bool:
    """True for the embedded sqlite/file store, whose artifacts live under artifact_root."""
    return settings.tracking_uri.startswith(("sqlite:", "file:", "/"))


def connect(settings: Settings):
    """Point MLflow at the workspace and return an MlflowClient."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")  # no "View run at" lines per run
    if settings.tracking_username:  # MLflow's clients (and our step processes) read the server user from here
        os.environ["MLFLOW_TRACKING_USERNAME"] = settings.tracking_username
        os.environ["MLFLOW_TRACKING_PASSWORD"] = settings.tracking_password
    if is_local_store(settings):
        settings.state_dir.mkdir(parents=True, exist_ok=True)
        settings.artifact_root.mkdir(parents=True, exist_ok=True)
    import logging

    import mlflow

    logging.getLogger("mlflow").setLevel(logging.WARNING)
    mlflow.set_tracking_uri(settings.tracking_uri)
    mlflow.set_registry_uri(settings.tracking_uri)
    if settings.tracking_uri.startswith("sqlite:///"):
        return _create_store_once(settings.tracking_uri, Path(settings.tracking_uri[len("sqlite:///"):]))
    if settings.tracking_uri.startswith(("http://", "https://")):
        check_server(settings.tracking_uri)
    return mlflow.MlflowClient(tracking_uri=settings.tracking_uri, registry_uri=settings.tracking_uri)


def health(uri: str, timeout: float = 5.0) -> tuple[int | None, str]:
    """GET /health of the MLflow server at uri: (its HTTP status, ""), (0, "") for a TLS answer (TLS settings are
    MLflow's business), or (None, why nothing answered)."""
    import ssl
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout) as response:
            return response.status, ""
    except urllib.error.HTTPError as exc:  # it answered
        return exc.code, ""
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        return (0, "") if isinstance(reason, ssl.SSLError) else (None, str(reason))


def check_server(uri: str, wait_s: float | None = None) -> None:
    """Raise ServerDownError, naming the server and the reason, when nothing answers at uri within wait_s
    (default MLOPS_SERVER_WAIT; any answer counts, even 401): MLflow's own client would retry for minutes,
    then print a traceback."""
    from ml_service import env as envvars

    if uri in _ANSWERED:
        return
    deadline = time.monotonic() + (envvars.MLOPS_SERVER_WAIT.get() if wait_s is None else wait_s)
    while True:
        status, reason = health(uri)
        if status is not None:
            break
        if time.monotonic() >= deadline:
            raise ServerDownError(f"the workspace's MLflow server at {uri} does not answer ({reason}): start it "
                                  "(`mlops workspace up`, or ask whoever runs it), or point MLOPS_TRACKING_URI at one "
                                  "that runs; `mlops workspace status` says what is where")
        time.sleep(1.0)
    _ANSWERED.add(uri)


def _create_store_once(uri: str, database: Path):
    """A client; when several processes start on a fresh workspace, one creates the schema (MLflow's
    migrations race otherwise) while the others wait for it."""
    import fcntl

    import mlflow

    ready = database.with_name(database.name + ".ready")
    if ready.exists() and database.exists():
        return mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
    from ml_service.workspace import store_template

    database.parent.mkdir(parents=True, exist_ok=True)
    with open(database.with_name(database.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if ready.exists() and database.exists():  # another process made it while we waited
            return mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
        how = "copied from the empty store template"
        if database.exists() or not store_template.copy_template(database):
            fresh = not database.exists()
            client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)  # creates and migrates the store
            client.search_experiments(max_results=1)
            client.search_registered_models(max_results=1)
            if fresh:
                store_template.save_template(database)
            how = "created by MLflow"
        ready.write_text(how + "\n")
    return mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)


def ensure_experiment(client, settings: Settings, name: str | None = None) -> str:
    """The id of the named experiment (default: the workspace's), created with our artifact root."""
    name = name or settings.experiment
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        if experiment.lifecycle_stage == "deleted":
            client.restore_experiment(experiment.experiment_id)
        return experiment.experiment_id
    from mlflow.exceptions import MlflowException

    location = None
    if is_local_store(settings):
        location = (settings.artifact_root / name).as_uri()
    try:
        return client.create_experiment(name, artifact_location=location)
    except MlflowException:  # another process created it at the same moment: use theirs
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            raise
        return experiment.experiment_id


def log_inputs(client, run_id: str, datasets: list, attempts: int = 5) -> None:
    """`client.log_inputs`, safe when several runs record the same dataset at once.

    MLflow's SQL store looks the dataset up, then inserts it: two processes logging the same
    (experiment, name, digest) together both miss it and the second insert breaks the unique key.
    On that conflict the row now exists, so a retry finds it and only links it to the run.
    """
    import time

    from mlflow.exceptions import MlflowException

    for attempt in range(attempts):
        try:
            client.log_inputs(run_id, datasets=datasets)
            return
        except MlflowException as error:
            text = str(error)
            if attempt == attempts - 1 or not ("UNIQUE constraint" in text or "duplicate key" in text):
                raise
            time.sleep(0.05 * (attempt + 1))
