"""The registration lock a team workspace's clones share (workspace/server_lock.py): the registered model
`mlops-lock.<model>`, whose versions are tickets; the lowest ticket tagged `held` holds the lock, naming its
owner; staleness is measured on the server's clock (the versions' last_updated_timestamp), never on a tag.

Run in-process against a real MLflow sqlite store (the same registry code an MLflow server runs). The attack by
a reader on a real team server is tests/team/test_trust.py's; ticket order is checked against MLflow's own server
(versions are text over REST)."""
from __future__ import annotations

import sqlite3
import subprocess

import pytest

from ml_service.workspace import owners, server_lock, tracking
from ml_service.workspace.registry import RegistryError
from tests.team.test_migrate import plain_server  # noqa: F401 (a module fixture: MLflow's own server, no users)

pytestmark = pytest.mark.integration
OTHER_HOST = "another-host.example|boot|4242|1234"


@pytest.fixture
def client(workspace):
    return tracking.connect(workspace)


def tickets(client, model: str) -> dict[str, dict]:
    """version -> tags of every ticket of model's lock."""
    found = client.search_model_versions(f"name='{server_lock.lock_name(model)}'")
    return {str(v.version): dict(v.tags) for v in found}


def held(client, model: str) -> list[str]:
    return sorted(v for v, tags in tickets(client, model).items() if tags[server_lock.STATE_TAG] == "held")


def plant(client, model: str, owner: str) -> str:
    """A ticket left by someone else (holding the lock); its version."""
    name = server_lock.lock_name(model)
    server_lock._ensure_lock_model(client, name)
    tags = {owners.OWNER_TAG: owner, server_lock.STATE_TAG: "held"}
    ticket = client.create_model_version(name, server_lock.SOURCE, tags=tags)
    return str(ticket.version)


def age_on_the_server(workspace, model: str, version: str, seconds: int) -> None:
    """Make a ticket's server-side timestamp older (what time passing on the server does)."""
    database = workspace.tracking_uri[len("sqlite:///"):]
    with sqlite3.connect(database) as connection:
        connection.execute("UPDATE model_versions SET last_updated_time = last_updated_time - ? "
                           "WHERE name = ? AND version = ?",
                           (seconds * 1000, server_lock.lock_name(model), int(version)))


def test_the_lock_names_its_owner_excludes_a_second_taker_and_is_released_after(client):
    with server_lock.hold(client, "m"):
        assert held(client, "m") == ["1"]
        assert tickets(client, "m")["1"][owners.OWNER_TAG] == owners.owner_tag()
        with pytest.raises(RegistryError) as busy:
            with server_lock.hold(client, "m", wait=0):
                pytest.fail("a held lock was taken twice")
        assert "waited 0s for the registration lock mlops-lock.m" in str(busy.value)
        assert held(client, "m") == ["1"]  # the holder's ticket is left as it was; the loser's is released
        with server_lock.hold(client, "other", wait=0):  # another model's registration is not blocked
            assert held(client, "other") == ["1"]
    assert held(client, "m") == [] and held(client, "other") == []
    with server_lock.hold(client, "m", wait=0):  # free again
        assert held(client, "m") == ["3"]


def test_tickets_are_ordered_as_numbers_when_they_pass_from_9_to_10(plain_server, monkeypatch):  # noqa: F811
    """Against a real MLflow server (its REST API answers versions as text, where the sqlite store above answers
    numbers): ticket 9 holds the lock and ticket 10 ("10" sorts before "9" as text) waits; once 9 is released, the
    next ticket takes it."""
    import mlflow

    for key in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
        monkeypatch.delenv(key, raising=False)
    client = mlflow.MlflowClient(plain_server, plain_server)
    for _ in range(8):
        with server_lock.hold(client, "m", wait=0):
            pass
    with server_lock.hold(client, "m", wait=0):
        assert held(client, "m") == ["9"]
        with pytest.raises(RegistryError, match="waited 0s"):
            with server_lock.hold(client, "m", wait=0):
                pytest.fail("ticket 10 took the lock ticket 9 holds")
        assert held(client, "m") == ["9"]
    with server_lock.hold(client, "m", wait=0):
        assert held(client, "m") == ["11"]


def test_the_lock_is_released_when_the_registration_fails(client):
    with pytest.raises(ValueError):
        with server_lock.hold(client, "m"):
            raise ValueError("the registration failed")
    assert held(client, "m") == []


def test_a_ticket_older_than_stale_after_on_the_servers_clock_is_broken_and_a_younger_one_is_not(client, workspace):
    """Both sides of the staleness limit (seconds), for an owner this host cannot check (another host)."""
    old = plant(client, "old", OTHER_HOST)
    age_on_the_server(workspace, "old", old, 7200)
    with server_lock.hold(client, "old", wait=0, stale_after=1800):
        assert held(client, "old") == ["2"]
    assert tickets(client, "old")[old][server_lock.STATE_TAG] == "broken"
    young = plant(client, "young", OTHER_HOST)
    age_on_the_server(workspace, "young", young, 600)
    with pytest.raises(RegistryError):
        with server_lock.hold(client, "young", wait=0, stale_after=1800):
            pytest.fail("a lock younger than stale_after was broken")
    assert held(client, "young") == [young]


def test_a_client_written_timestamp_counts_for_nothing(client, workspace):
    """The old lock trusted a `mlops.lock.since` tag: 1e12 made it eternal. Now only the server's clock counts,
    and a tag like that does not keep a stale ticket alive."""
    version = plant(client, "forged", OTHER_HOST)
    client.set_model_version_tag(server_lock.lock_name("forged"), version, "mlops.lock.since", "1e12")
    age_on_the_server(workspace, "forged", version, 7200)
    with server_lock.hold(client, "forged", wait=0, stale_after=1800):
        assert held(client, "forged") == ["2"]


def test_a_fresh_ticket_whose_owner_on_this_host_is_gone_is_broken_at_once(client):
    process = subprocess.Popen(["sleep", "600"])
    owner = owners.owner_tag(process.pid)
    process.kill()
    process.wait()
    plant(client, "dead", owner)
    with server_lock.hold(client, "dead", wait=0, stale_after=1800):
        assert held(client, "dead") == ["2"]
    plant(client, "alive", owners.owner_tag())  # this process: alive, so it is waited for
    with pytest.raises(RegistryError):
        with server_lock.hold(client, "alive", wait=0, stale_after=1800):
            pytest.fail("a live owner's fresh lock was broken")
    assert held(client, "alive") == ["1"]


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
