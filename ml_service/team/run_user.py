"""A short-lived MLflow server user for one pipeline run, so that a step never holds the checkout's password.

On a team server (`mlops workspace up`: MLflow's basic auth), the pipeline runner acts as the checkout's user,
often the admin. A step runs project code, and evaluate loads the champion's pickle: whatever runs there can do
what its credential allows. So, when the checkout's user may create users (an admin), the runner creates
`mlops-run-<time>-<random>` with a fresh password and grants it EDIT on the project's experiment, its registered
model and that model's registration lock (`mlops-lock.<model>`); everything else it reads with the server's
default READ. The steps get that credential (`step_env`), never the checkout's; the runner deletes the user when
the run ends (finished, failed, interrupted). A run killed with SIGKILL leaves its user behind: every
local record (`<state_dir>/run-users/<name>`, the owner process, no secret) whose process is gone is deleted by
the next run (`sweep`), and run users older than `MAX_AGE_SECONDS` by any admin's run (another machine's).

A checkout whose user may not create users (not an admin) passes its own credential, which is as narrow as the
admin made it. docs/security.md has the trust model.
"""
from __future__ import annotations

import secrets
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

from ml_service.errors import MLOpsError

if TYPE_CHECKING:
    from ml_service.config import Settings

PREFIX = "mlops-run-"
MAX_AGE_SECONDS = 2 * 24 * 3600  # a run user this old is left over by a killed run on some machine
WRITE = "EDIT"
STEP_EXPERIMENTS = ("mlops-batch",)  # platform experiments a step writes (batch/record.py); up makes them the admin's


class RunUserError(MLOpsError):
    """The run's user could not be created on the team server."""


@dataclass(frozen=True)
class RunCredential:
    """The server user a run's steps act as."""

    username: str
    password: str = field(repr=False)
    temporary: bool = True  # False: the checkout's own (non-admin) user, never deleted

    def env(self) -> dict[str, str]:
        """The variables a step process gets: MLflow's client reads the user from them, and `load_settings`
        in a step takes them instead of the checkout's password file (MLOPS_RUN_USER)."""
        return {"MLFLOW_TRACKING_USERNAME": self.username, "MLFLOW_TRACKING_PASSWORD": self.password,
                "MLOPS_RUN_USER": self.username}


def records(settings: Settings) -> Path:
    """Where this checkout notes the run users it created (name -> owner process; no secret)."""
    return settings.state_dir / "run-users"


def _auth_client(settings: Settings):
    """MLflow's basic-auth API, called as the checkout's user."""
    from ml_service.team.users import auth_api

    return auth_api(settings)


def applies(settings: Settings) -> bool:
    """True when runs of this checkout act on a server with users (a team workspace), as a named user."""
    return settings.tracking_uri.startswith(("http://", "https://")) and bool(settings.tracking_username)


def create(settings: Settings, experiment_id: str, model_name: str) -> RunCredential:
    """A new run user with EDIT on the experiment, model_name and its lock; the checkout's own credential when
    its user may not create users."""
    from mlflow.exceptions import MlflowException

    from ml_service.team.users import set_permission
    from ml_service.workspace.server_lock import lock_name

    client = _auth_client(settings)
    username = f"{PREFIX}{int(time.time())}-{secrets.token_hex(4)}"
    password = secrets.token_urlsafe(24)
    try:
        client.create_user(username, password)
    except MlflowException as exc:
        if exc.get_http_status_code() in (401, 403):  # not an admin: its own grants are what the admin gave it
            return RunCredential(settings.tracking_username, settings.tracking_password, temporary=False)
        raise RunUserError(f"cannot create the run user on {settings.tracking_uri}: {exc.message}") from None
    _note(settings, username)
    try:
        set_permission(client, username, "experiment", experiment_id, WRITE)
        for shared in STEP_EXPERIMENTS:  # what a step records beyond its project (a batch step's job)
            found = _experiment_id(settings, shared)
            if found:
                set_permission(client, username, "experiment", found, WRITE)
        for name in (model_name, lock_name(model_name)):
            _claim(settings, name)  # the checkout's (as `up` does): never the run user's to manage
            set_permission(client, username, "registered_model", name, WRITE)
    except BaseException as exc:
        delete(settings, username)
        if isinstance(exc, MlflowException):
            raise RunUserError(f"cannot grant {WRITE} to the run user on {settings.tracking_uri}: "
                               f"{exc.message}") from None
        raise
    return RunCredential(username, password)


def _experiment_id(settings: Settings, name: str) -> str:
    """The id of the named experiment on the server ('' when there is none: the step creates it, as the run user)."""
    import mlflow

    found = mlflow.MlflowClient(settings.tracking_uri).get_experiment_by_name(name)
    return found.experiment_id if found is not None else ""


def _claim(settings: Settings, name: str) -> None:
    """Create registered model name as the checkout's user when it does not exist yet."""
    import mlflow
    from mlflow.exceptions import MlflowException

    try:
        mlflow.MlflowClient(settings.tracking_uri, settings.tracking_uri).create_registered_model(name)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise


def _note(settings: Settings, username: str) -> None:
    from ml_service.workspace import owners

    folder = records(settings)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / username).write_text(owners.owner_tag() + "\n")


def delete(settings: Settings, username: str) -> None:
    """Delete a run user from the server (gone already is fine) and its local record."""
    from mlflow.exceptions import MlflowException

    try:
        _auth_client(settings).delete_user(username)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_DOES_NOT_EXIST" and exc.get_http_status_code() != 404:
            raise RunUserError(f"cannot delete the run user {username} on {settings.tracking_uri}: "
                               f"{exc.message}") from None
    (records(settings) / username).unlink(missing_ok=True)


def _server_run_users(client) -> list[str]:
    return [name for name in client.list_usernames() if name.startswith(PREFIX)]


def _age(username: str, now: float) -> float:
    try:
        return now - int(username[len(PREFIX):].split("-", 1)[0])
    except ValueError:
        return 0.0


def sweep(settings: Settings) -> list[str]:
    """Delete the run users left by runs that were killed: this checkout's whose process is gone, and any
    older than MAX_AGE_SECONDS; returns their names."""
    from mlflow.exceptions import MlflowException

    from ml_service.workspace import owners

    stale = []
    folder = records(settings)
    if folder.is_dir():
        for record in folder.iterdir():
            if owners.owner_is_gone(record.read_text().strip()):
                stale.append(record.name)
    try:
        now = time.time()
        stale += [name for name in _server_run_users(_auth_client(settings))
                  if name not in stale and _age(name, now) > MAX_AGE_SECONDS]
    except MlflowException:
        pass  # not an admin: only its own records
    deleted = []
    for username in stale:
        try:
            delete(settings, username)
            deleted.append(username)
        except RunUserError:
            pass  # e.g. not an admin: an admin's next run deletes it
    return deleted


@contextmanager
def for_run(settings: Settings, experiment_id: str, model_name: str) -> Iterator[RunCredential | None]:
    """The credential a run's steps use (None on a server without users or the embedded workspace), deleted
    when the block ends, however it ends."""
    if not applies(settings):
        yield None
        return
    sweep(settings)
    credential = create(settings, experiment_id, model_name)
    try:
        yield credential
    finally:
        if credential.temporary:
            try:
                delete(settings, credential.username)
            except (RunUserError, OSError) as exc:  # the server is gone: the record stays, the next run's sweep
                print(f"warning: {exc}; the next pipeline run deletes it")
