"""A registration lock that every clone of a team workspace shares: the MLflow server itself.

Clones on different machines share no file system, so the file lock of the embedded workspace
cannot serialize their registrations. Creating a registered model is atomic on the server (the
name is a primary key: a second create fails with RESOURCE_ALREADY_EXISTS), so the lock is the
registered model `mlops-lock.<model>`, created to take the lock and deleted to release it. It
names its owner (host, pid, start time); a lock whose owner on this host is gone, or older than
`stale_after` seconds, is broken.
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


def lock_name(model_name: str) -> str:
    """The registered model that stands for model_name's registration lock."""
    return PREFIX + model_name


def _break_if_stale(client, name: str, stale_after: float) -> bool:
    from mlflow.exceptions import MlflowException

    try:
        held = client.get_registered_model(name)
    except MlflowException:
        return True  # released meanwhile
    owner = held.tags.get(owners.OWNER_TAG, "")
    since = float(held.tags.get("mlops.lock.since", "0") or 0)
    if owners.owner_is_gone(owner) or time.time() - since > stale_after:
        try:
            client.delete_registered_model(name)
        except MlflowException as exc:
            raise RegistryError(f"the registration lock {name} is stale ({owners.describe(owner)}) but cannot be "
                                f"removed by this user ({exc.message}); an admin can delete that registered model")
        return True
    return False


def _as_this_checkout(settings: Settings | None) -> None:
    """MLflow's client reads the server user from the environment: when the caller has not connected yet
    (e.g. `mlops pipeline publish` takes the lock first), act as the user of settings' checkout."""
    import os

    if settings is None or os.environ.get("MLFLOW_TRACKING_USERNAME"):
        return
    if settings.tracking_username:
        os.environ["MLFLOW_TRACKING_USERNAME"] = settings.tracking_username
        os.environ["MLFLOW_TRACKING_PASSWORD"] = settings.tracking_password


@contextmanager
def hold(client, model_name: str, wait: float = 900, stale_after: float = 1800,
         settings: Settings | None = None) -> Iterator[None]:
    """Hold model_name's registration lock on the server (wait up to `wait` seconds for it); settings: the
    workspace whose server user takes it, when this process has not connected as one yet."""
    from mlflow.exceptions import MlflowException

    _as_this_checkout(settings)
    name = lock_name(model_name)
    deadline = time.monotonic() + wait
    while True:
        try:
            client.create_registered_model(
                name, tags={owners.OWNER_TAG: owners.owner_tag(), "mlops.lock.since": repr(time.time())},
                description=f"mlops: registration of {model_name} in progress (a lock; deleted when done)")
            break
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                raise RegistryError(f"cannot take the registration lock {name}: {exc.message}") from None
        if _break_if_stale(client, name, stale_after):
            continue
        if time.monotonic() > deadline:
            raise RegistryError(f"waited {wait:.0f}s for the registration lock {name}; another registration holds it")
        time.sleep(0.5)
    try:
        yield
    finally:
        try:
            client.delete_registered_model(name)
        except MlflowException:
            pass  # broken as stale by another process: nothing left to release
