"""Users and permissions of a team workspace, through MLflow's basic-auth API (the caller must be an admin
for users; MANAGE on a resource, or admin, for its permissions)."""
from __future__ import annotations

import secrets
from pathlib import Path

from ml_service.config import Settings
from ml_service.errors import MLOpsError, UsageError
from ml_service.workspace.auth_api import AuthApi

PERMISSIONS = ("READ", "USE", "EDIT", "MANAGE", "NO_PERMISSIONS")


class UserAdminError(MLOpsError):
    """The server refused a user or permission change."""


def _client(settings: Settings) -> AuthApi:
    from ml_service.workspace import tracking

    if tracking.is_local_store(settings):
        raise UsageError("the embedded workspace has no users; start a team workspace with `mlops workspace up`")
    tracking.connect(settings)  # exports this checkout's server user for MLflow's client
    return AuthApi(settings.tracking_uri)


def auth_api(settings: Settings) -> AuthApi:
    """The basic-auth API of settings' server, called as the checkout's user."""
    return _client(settings)


def password_file(settings: Settings, username: str) -> Path:
    """Where `add_user` keeps username's generated password (0600, in this checkout's state dir)."""
    return settings.state_dir / "secrets" / "users" / username


def add_user(settings: Settings, username: str) -> Path:
    """Create username with a generated password; returns the 0600 file that holds it (never printed)."""
    from mlflow.exceptions import MlflowException

    from ml_service.team.server import write_secret

    from ml_service import identity
    from ml_service.team.run_user import PREFIX

    if username.startswith(PREFIX):
        raise UsageError(f"user names starting {PREFIX!r} are the pipeline runs' own (deleted when a run ends)")
    client = _client(settings)
    password = secrets.token_urlsafe(24)
    try:
        same = identity.find(client.list_usernames(), username)
        if same is not None:  # the platform's one rule for names (approvers, Studio users, CI tokens)
            raise UserAdminError(f"cannot create user {username!r} on {settings.tracking_uri}: the server has "
                                 f"{same!r}, the same user by the platform's rule for names (case and form)")
        client.create_user(username, password)
    except MlflowException as exc:
        raise UserAdminError(f"cannot create user {username!r} on {settings.tracking_uri}: {exc.message}") from None
    target = password_file(settings, username)
    write_secret(target, password)
    return target


def grant(settings: Settings, username: str, permission: str, model: str = "", experiment: str = "") -> str:
    """Give username permission on a registered model or an experiment (by name); what was set, in words."""
    from mlflow.exceptions import MlflowException

    permission = permission.upper()
    if permission not in PERMISSIONS:
        raise UsageError(f"permission {permission!r} is not one of {', '.join(PERMISSIONS)}")
    if bool(model) == bool(experiment):
        raise UsageError("name exactly one of --model NAME or --experiment NAME")
    client = _client(settings)
    if model:
        resource_type, resource_id, what = "registered_model", model, f"registered model {model}"
    elif experiment == "*":
        resource_type, resource_id, what = "experiment", "*", "every experiment"
    else:
        import mlflow

        found = mlflow.MlflowClient(settings.tracking_uri).get_experiment_by_name(experiment)
        if found is None:
            raise UsageError(f"no experiment named {experiment!r} on {settings.tracking_uri}")
        resource_type, resource_id, what = "experiment", found.experiment_id, f"experiment {experiment}"
    targets = [resource_id]
    if model and model != "*":  # registering a model takes its lock: the same grant on the lock object
        from ml_service.workspace.server_lock import lock_name

        targets.append(lock_name(model))
    try:
        for target in targets:
            set_permission(client, username, resource_type, target, permission)
    except MlflowException as exc:
        raise UserAdminError(f"cannot set {permission} for {username} on {what}: {exc.message}") from None
    return f"{username}: {permission} on {what}"


def set_permission(client, username: str, resource_type: str, resource_id: str, permission: str) -> None:
    """Grant permission (client: AuthApi), replacing the user's grant on that resource if there is one."""
    from mlflow.exceptions import MlflowException

    try:
        client.grant_user_permission(username, resource_type, resource_id, permission)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
        client.revoke_user_permission(username, resource_type, resource_id)  # e.g. MANAGE as its creator
        client.grant_user_permission(username, resource_type, resource_id, permission)
