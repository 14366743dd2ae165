"""The registration lock a team workspace's clones share (workspace/server_lock.py): the registered model
`mlops-lock.<model>`, created to take the lock and deleted to release it, naming its owner and since when.

Run in-process against a real MLflow sqlite store: creating a registered model that exists fails there with the
same RESOURCE_ALREADY_EXISTS an MLflow server answers, which is all the lock relies on."""
from __future__ import annotations

import subprocess
import time

import pytest

from ml_service.workspace import owners, server_lock, tracking
from ml_service.workspace.registry import RegistryError

pytestmark = pytest.mark.integration
OTHER_HOST = "another-host.example|boot|4242|1234"


@pytest.fixture
def client(workspace):
    return tracking.connect(workspace)


def locks(client) -> dict[str, dict]:
    """Every lock model with its tags."""
    return {m.name: dict(m.tags) for m in client.search_registered_models(f"name LIKE '{server_lock.PREFIX}%'")}


def plant(client, model: str, owner: str, since: float) -> None:
    """A lock left by someone else."""
    client.create_registered_model(server_lock.lock_name(model),
                                   tags={owners.OWNER_TAG: owner, "mlops.lock.since": repr(since)})


def test_the_lock_names_its_owner_excludes_a_second_taker_and_is_gone_after(client):
    before = time.time()
    with server_lock.hold(client, "m"):
        held = locks(client)["mlops-lock.m"]
        assert held[owners.OWNER_TAG] == owners.owner_tag()
        assert before <= float(held["mlops.lock.since"]) <= time.time()
        with pytest.raises(RegistryError) as busy:
            with server_lock.hold(client, "m", wait=0):
                pytest.fail("a held lock was taken twice")
        assert str(busy.value) == ("waited 0s for the registration lock mlops-lock.m; another registration "
                                   "holds it")
        assert locks(client)["mlops-lock.m"] == held  # the holder's lock is left as it was
        with server_lock.hold(client, "other", wait=0):  # another model's registration is not blocked
            assert sorted(locks(client)) == ["mlops-lock.m", "mlops-lock.other"]
    assert locks(client) == {}


def test_the_lock_is_released_when_the_registration_fails(client):
    with pytest.raises(ValueError):
        with server_lock.hold(client, "m"):
            raise ValueError("the registration failed")
    assert locks(client) == {}


def test_a_lock_older_than_stale_after_is_broken_and_a_younger_one_is_not(client):
    """Both sides of the staleness limit (seconds), for an owner this host cannot check (another host)."""
    plant(client, "old", OTHER_HOST, time.time() - 7200)
    with server_lock.hold(client, "old", wait=0, stale_after=1800):
        assert locks(client)["mlops-lock.old"][owners.OWNER_TAG] == owners.owner_tag()
    plant(client, "young", OTHER_HOST, time.time() - 600)
    with pytest.raises(RegistryError):
        with server_lock.hold(client, "young", wait=0, stale_after=1800):
            pytest.fail("a lock younger than stale_after was broken")
    assert locks(client)["mlops-lock.young"][owners.OWNER_TAG] == OTHER_HOST


def test_a_fresh_lock_whose_owner_on_this_host_is_gone_is_broken_at_once(client):
    process = subprocess.Popen(["sleep", "600"])
    owner = owners.owner_tag(process.pid)
    process.kill()
    process.wait()
    plant(client, "dead", owner, time.time())
    with server_lock.hold(client, "dead", wait=0, stale_after=1800):
        assert locks(client)["mlops-lock.dead"][owners.OWNER_TAG] == owners.owner_tag()
    plant(client, "alive", owners.owner_tag(), time.time())  # this process: alive, so it is waited for
    with pytest.raises(RegistryError):
        with server_lock.hold(client, "alive", wait=0, stale_after=1800):
            pytest.fail("a live owner's fresh lock was broken")
    assert locks(client)["mlops-lock.alive"][owners.OWNER_TAG] == owners.owner_tag()


def test_the_lock_is_taken_as_the_server_user_of_the_settings_passed_in(client, workspace, monkeypatch):
    import dataclasses
    import os

    monkeypatch.delenv("MLFLOW_TRACKING_USERNAME", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_PASSWORD", raising=False)
    with server_lock.hold(client, "anonymous"):  # no settings: the environment is left as it is
        assert "MLFLOW_TRACKING_USERNAME" not in os.environ
    team = dataclasses.replace(workspace, tracking_username="alice", tracking_password="s3cret-from-a-0600-file")
    with server_lock.hold(client, "m", settings=team):
        assert (os.environ["MLFLOW_TRACKING_USERNAME"], os.environ["MLFLOW_TRACKING_PASSWORD"]) == \
            ("alice", "s3cret-from-a-0600-file")
