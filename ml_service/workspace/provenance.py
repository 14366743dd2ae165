"""Where a registered version came from, checked before its files are unpickled (issue 24, finding 1).

A model file is code: loading a pickle runs whatever its author put in it. So the platform loads a
registered version (a champion in evaluate, `mlops serve`, an image build, batch scoring, drift checks)
only when it can trace it to a trusted writer:

- its source run exists and belongs to the project's experiment (creating a run there, or writing its
  artifacts, needs EDIT on that experiment: MLflow's server enforces it in team mode);
- its files are that run's (the version's source lies under the run's artifacts, or is the run's
  logged model);
- in team mode, when the run's user is a server user and the server lets this user ask (an admin), that user
  has EDIT or MANAGE on the experiment. (MLflow stores the user a client claims, the OS login by default, so
  this is a second check; the first, enforced by the server, is who may write to the experiment.)

Anything else is refused with the version named and what to do. docs/security.md has the whole model.
"""
from __future__ import annotations

from ml_service.workspace.registry import RegistryError

WRITERS = ("EDIT", "MANAGE")


class UntrustedModelError(RegistryError):
    """A registered version cannot be traced to a trusted writer: it is not loaded."""


def _refuse(version, why: str, experiment: str) -> UntrustedModelError:
    return UntrustedModelError(
        f"refusing to load {version.name} version {version.version}: {why}. Only versions trained in the "
        f"experiment '{experiment}' by a user with write access are loaded; register a model from a run of "
        f"that experiment (`mlops pipeline run`) and `mlops model promote {version.name}:VERSION` it, or ask "
        "an admin to delete this version")


def _logged_model_run(client, model_id: str) -> tuple[str, str]:
    """(source run id, experiment id) of a logged model, ("", "") when it cannot be read."""
    from mlflow.exceptions import MlflowException

    try:
        logged = client.get_logged_model(model_id)
    except MlflowException:
        return "", ""
    return str(logged.source_run_id or ""), str(logged.experiment_id or "")


def _copied_version(client, source: str):
    """The version a source models:/NAME/VERSION names (None for any other source or a missing version)."""
    from mlflow.exceptions import MlflowException

    parts = source[len("models:/"):].split("/") if source.startswith("models:/") else []
    if len(parts) != 2 or parts[0].startswith("m-") or not (parts[1].isascii() and parts[1].isdigit()):
        return None
    try:
        return client.get_model_version(parts[0], parts[1])
    except MlflowException:
        return None


def _files_are_the_runs(client, version, run, depth: int = 0) -> bool:
    """True when the version's source is run's artifacts (a path under them, runs:/RUN/..., its logged model, or
    another version of the same run: models:/NAME/VERSION, as MLflow's copy of a version makes)."""
    source = str(version.source or "")
    run_id = run.info.run_id
    copied = _copied_version(client, source)
    if copied is not None:
        return depth < 5 and str(copied.run_id or "") == run_id and _files_are_the_runs(client, copied, run, depth + 1)
    if source.startswith(f"runs:/{run_id}/") or source == f"runs:/{run_id}":
        return True
    artifacts = str(run.info.artifact_uri or "").rstrip("/")
    if artifacts and (source == artifacts or source.startswith(artifacts + "/")) and ".." not in source:
        return True
    model_id = getattr(version, "model_id", None) or ""
    if source.startswith("models:/m-"):
        model_id = source[len("models:/"):].split("/", 1)[0]
    if model_id:
        source_run, experiment_id = _logged_model_run(client, model_id)
        return source_run == run_id and experiment_id == run.info.experiment_id
    return False


def _writer_permission(tracking_uri: str, username: str, experiment_id: str) -> str | None:
    """The run user's permission on the experiment; None when this user may not ask or the run's user is no user
    of the server."""
    from mlflow.exceptions import MlflowException

    from ml_service.workspace.auth_api import AuthApi

    try:
        result = AuthApi(tracking_uri).request("/api/3.0/mlflow/users/permissions/get", "GET", params={
            "username": username, "resource_type": "experiment", "resource_id": experiment_id})
    except MlflowException as exc:
        if exc.get_http_status_code() in (401, 403):
            return None
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            return None  # not a server user: MLflow records the user a client claims (the OS login by default)
        raise
    return str(result.get("permission", ""))


def untrusted_writer(tracking_uri: str, user: str, experiment_id: str) -> str:
    """Why user, who wrote something the platform will act on (a published pipeline, a data set version), is not a
    writer of the experiment ('' when it is, or when the server cannot say: not a team server, a user it does not
    have, or this user may not ask). The same rule as a model version's writer (check)."""
    if not tracking_uri.startswith(("http://", "https://")) or not user:
        return ""
    permission = _writer_permission(tracking_uri, user, experiment_id)
    if permission is None or permission in WRITERS:
        return ""
    return f"written by {user!r}, who has {permission} (not write access) on the project's experiment"


def check(client, version, experiment: str, tracking_uri: str = "", _depth: int = 0) -> None:
    """Raise UntrustedModelError unless version was trained in experiment by a writer (see the module)."""
    from mlflow.exceptions import MlflowException

    run_id = str(getattr(version, "run_id", "") or "")
    source = str(version.source or "")
    if not run_id and source.startswith("models:/m-"):  # a logged model's files: the run that logged it
        run_id = _logged_model_run(client, source[len("models:/"):].split("/", 1)[0])[0]
    if not run_id:
        copied = _copied_version(client, str(version.source or ""))
        if copied is not None and _depth < 5:  # a copy (models:/NAME/VERSION): what it copies must be traced
            try:
                return check(client, copied, experiment, tracking_uri, _depth + 1)
            except UntrustedModelError as exc:
                raise UntrustedModelError(f"{version.name} version {version.version} copies "
                                          f"{copied.name} version {copied.version}: {exc}") from None
        raise _refuse(version, "it names no source run", experiment)
    try:
        run = client.get_run(run_id)
    except MlflowException:
        raise _refuse(version, f"its source run {run_id} does not exist", experiment) from None
    expected = client.get_experiment_by_name(experiment)
    if expected is None or run.info.experiment_id != expected.experiment_id:
        raise _refuse(version, f"its source run {run_id} is not a run of the experiment '{experiment}'",
                      experiment)
    if not _files_are_the_runs(client, version, run):
        raise _refuse(version, f"its files ({version.source}) are not those of its source run {run_id}",
                      experiment)
    why = untrusted_writer(tracking_uri, str(run.info.user_id or ""), expected.experiment_id)
    if why:
        raise _refuse(version, f"its source run {run_id} was {why} '{experiment}'", experiment)


def check_for_settings(client, version, tracking_uri: str = "") -> None:
    """check() with the experiment of the project whose registered model version belongs to (this checkout)."""
    from ml_service.config import load_settings

    settings = load_settings().for_registered(version.name)
    check(client, version, settings.experiment, tracking_uri or settings.tracking_uri)
