"""A registration lock that every clone of a team workspace shares: the MLflow server itself.

Clones on different machines share no file system, so the file lock of the embedded workspace
cannot serialize their registrations. The lock is the registered model `mlops-lock.<model>`, which
`mlops workspace up` creates as the admin (so only users with EDIT on it can take it: a reader cannot,
issue 24 finding 3). Taking the lock creates a version of it, a ticket: the server numbers versions
atomically, and the lowest ticket still tagged `held` holds the lock; the others wait in line. Releasing
tags the ticket `released` (EDIT may tag a version but not delete it).

A ticket names its owner (host, pid, start time). It is broken (tagged `broken`) when its owner on this
host is gone, or when it has held the lock longer than `stale_after` seconds, measured on the server's
clock only: the holder's `last_updated_timestamp` (set by the server when it took the lock) against the
server's time now (the `last_updated_timestamp` the server gives the waiter's own ticket when touched).
No client-written timestamp counts.
"""
from __future__ import annotations

import time
from contextlib import contextmanager
from typing import TYPE_CHECKING, Iterator

from ml_service.workspace import owners
from ml_service.workspace.registry import RegistryError

if TYPE_CHECKING:
    from ml_service.config import Settings

PREFIX = "mlops-lock."
STATE_TAG = "mlops.lock.state"
HELD, RELEASED, BROKEN = "held", "released", "broken"
SOURCE = "mlops:/registration-lock"  # a ticket has no files; MLflow wants a source URI


def lock_name(model_name: str) -> str:
    """The registered model that stands for model_name's registration lock."""
    return PREFIX + model_name


def _as_this_checkout(settings: Settings | None) -> None:
    """MLflow's client reads the server user from the environment: when the caller has not connected yet
    (e.g. `mlops pipeline publish` takes the lock first), act as the user of settings' checkout."""
    import os

    from ml_service import env as envvars

    if settings is None or envvars.MLFLOW_TRACKING_USERNAME.is_set():
        return
    if settings.tracking_username:
        os.environ["MLFLOW_TRACKING_USERNAME"] = settings.tracking_username
        os.environ["MLFLOW_TRACKING_PASSWORD"] = settings.tracking_password


def _ensure_lock_model(client, name: str) -> None:
    """The lock object (normally created by `mlops workspace up`; created here for a model it did not know)."""
    from mlflow.exceptions import MlflowException

    try:
        client.create_registered_model(name, description="mlops: the registration lock of this model (tickets)")
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise RegistryError(f"cannot create the registration lock {name}: {exc.message}") from None


def _take_ticket(client, name: str):
    from mlflow.exceptions import MlflowException

    try:
        return client.create_model_version(name, SOURCE, tags={owners.OWNER_TAG: owners.owner_tag(),
                                                               STATE_TAG: HELD},
                                           description="waiting for the registration lock", await_creation_for=0)
    except MlflowException as exc:
        raise RegistryError(
            f"cannot take the registration lock {name}: {exc.message}. Taking it needs EDIT on that registered "
            f"model (`mlops workspace grant USER EDIT --model {name[len(PREFIX):]}` gives both); if a user "
            "without write access created it, an admin deletes it and runs `mlops workspace up`") from None


def _first_held(client, name: str):
    """The ticket that holds the lock: the lowest version still tagged held."""
    held = client.search_model_versions(f"name='{name}' and tags.`{STATE_TAG}` = '{HELD}'")
    return min(held, key=lambda v: int(v.version)) if held else None


def _server_now(client, name: str, ticket) -> int:
    """The server's clock (ms): the last_updated_timestamp it sets on our own ticket when touched."""
    touched = client.update_model_version(name, ticket.version, description="waiting for the registration lock")
    return int(touched.last_updated_timestamp or 0)


def _break_if_stale(client, name: str, holder, ticket, stale_after: float) -> bool:
    owner = holder.tags.get(owners.OWNER_TAG, "")
    age = (_server_now(client, name, ticket) - int(holder.last_updated_timestamp or 0)) / 1000
    if not (owners.owner_is_gone(owner) or age > stale_after):
        return False
    client.set_model_version_tag(name, holder.version, STATE_TAG, BROKEN)
    client.set_model_version_tag(name, holder.version, "mlops.lock.broken_by", owners.owner_tag())
    return True


def _set_state(client, name: str, ticket, state: str) -> None:
    from mlflow.exceptions import MlflowException

    try:
        client.set_model_version_tag(name, ticket.version, STATE_TAG, state)
    except MlflowException:
        pass  # the server is gone: the ticket goes stale on its own


@contextmanager
def hold(client, model_name: str, wait: float = 900, stale_after: float = 1800,
         settings: Settings | None = None) -> Iterator[None]:
    """Hold model_name's registration lock on the server (wait up to `wait` seconds for it); settings: the
    workspace whose server user takes it, when this process has not connected as one yet."""
    _as_this_checkout(settings)
    name = lock_name(model_name)
    _ensure_lock_model(client, name)
    ticket = _take_ticket(client, name)
    try:
        deadline = time.monotonic() + wait
        while True:
            holder = _first_held(client, name)
            if holder is not None and str(holder.version) == str(ticket.version):
                break
            if holder is None:  # our ticket was broken meanwhile (taken for stale): stand in line again
                ticket = _take_ticket(client, name)
                continue
            if _break_if_stale(client, name, holder, ticket, stale_after):
                continue
            if time.monotonic() > deadline:
                raise RegistryError(f"waited {wait:.0f}s for the registration lock {name}; another registration "
                                    f"holds it ({owners.describe(holder.tags.get(owners.OWNER_TAG, ''))})")
            time.sleep(0.5)
        # the server stamps the moment the lock was taken: staleness counts from here, on its clock
        client.update_model_version(name, ticket.version, description="holds the registration lock")
    except BaseException:
        _set_state(client, name, ticket, RELEASED)
        raise
    try:
        yield
    finally:
        _set_state(client, name, ticket, RELEASED)
