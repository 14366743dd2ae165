"""What is really live (status.py): a live Docker record is checked against the engine (a real one: containers
of the offline base image, one running, one created and never started, one removed), and an environment serves
the champion only when its checked live version is the champion's; `mlops deploy check` exits 3 otherwise."""
from __future__ import annotations

import dataclasses

import pytest

from ml_service.deploy import records, status
from tests.conftest import fresh_store

pytestmark = [pytest.mark.integration, pytest.mark.docker]
LABEL = "mlops.test=deploy-status"


@pytest.fixture
def containers(docker_engine, workspace):
    """name -> a container of the base image: running, created (never started), and the name of a removed one."""
    image = workspace.base_image
    running = docker_engine.containers.run(image, ["sleep", "300"], detach=True, labels={"mlops.test": "deploy-status"})
    created = docker_engine.containers.create(image, ["true"], labels={"mlops.test": "deploy-status"})
    removed = docker_engine.containers.create(image, ["true"], labels={"mlops.test": "deploy-status"})
    gone = removed.name
    removed.remove(force=True)
    yield {"running": running.name, "created": created.name, "removed": gone}
    for container in docker_engine.containers.list(all=True, filters={"label": LABEL}):
        container.remove(force=True)


@pytest.fixture
def settings(workspace, tmp_path, monkeypatch):
    uri = fresh_store(tmp_path / "mlflow.db")
    monkeypatch.setenv("MLOPS_TRACKING_URI", uri)
    return dataclasses.replace(workspace, tracking_uri=uri)


def live(settings, version, target, mode="docker", environment="qa"):
    return records.record(settings, environment, settings.model_name, version, f"img:{version}",
                          f"http://127.0.0.1:1/{version}", records.LIVE, mode, target=target)


def test_a_live_docker_record_is_live_only_while_its_container_runs(settings, containers, docker_engine):
    rows = [live(settings, "1", containers["running"]), live(settings, "2", containers["created"], environment="a"),
            live(settings, "3", containers["removed"], environment="b"),
            live(settings, "4", "scoring-x", mode="helm", environment="production"),
            records.record(settings, "c", settings.model_name, "5", "img:5", "", records.FAILED, "docker",
                           target=containers["running"])]
    checked = [(d.version, state) for d, state in status.checked(rows)]
    assert checked == [("1", "live"), ("2", "down: stopped"), ("3", "down: missing"), ("4", "live"),
                       ("5", "failed")]
    docker_engine.containers.get(containers["running"]).stop(timeout=1)
    assert status.checked(rows[:1])[0][1] == "down: stopped"


def test_an_environment_serves_the_champion_only_when_its_checked_live_version_is_the_champion(
        settings, containers, capsys):
    from ml_service.cli import main
    from ml_service.workspace.tracking import connect

    client = connect(settings)
    name = settings.model_name
    client.create_registered_model(name)
    for _ in range(2):
        client.create_model_version(name, "file:///nowhere/model")
    state = status.environment_state(settings, "qa")
    assert (state.champion, state.live, state.in_sync) == (None, None, True)  # no champion: nothing to serve
    client.set_registered_model_alias(name, "champion", "2")
    assert status.environment_state(settings, "qa").in_sync is False  # nothing deployed
    live(settings, "1", containers["running"])
    state = status.environment_state(settings, "qa")
    assert (state.champion, state.live, state.in_sync) == ("2", "1", False)
    assert state.as_dict()["release"] == f"{name}:2"
    live(settings, "2", containers["removed"])  # recorded live, but its container is gone
    state = status.environment_state(settings, "qa")
    assert (state.live, state.in_sync) == (None, False)
    capsys.readouterr()
    assert main(["deploy", "check", "qa"]) == 3
    live(settings, "2", containers["running"])
    state = status.environment_state(settings, "qa")
    assert (state.live, state.in_sync, state.as_dict()["release"]) == ("2", True, None)
    assert main(["deploy", "check", "qa"]) == 0


def test_another_models_live_deployment_in_the_environment_is_not_this_models(settings):
    """Two models share QA: the other model's live version (the same number as this model's champion) does not make
    this model's environment serve its champion; its own live record does. Helm records: no container to check."""
    from ml_service.workspace.tracking import connect

    client = connect(settings)
    name = settings.model_name
    client.create_registered_model(name)
    for _ in range(2):
        client.create_model_version(name, "file:///nowhere/model")
    client.set_registered_model_alias(name, "champion", "2")
    records.record(settings, "qa", "another-model", "2", "img:other", "http://127.0.0.1:1/", records.LIVE, "helm",
                   target="scoring-other")
    state = status.environment_state(settings, "qa")
    assert (state.champion, state.live, state.in_sync) == ("2", None, False)
    live(settings, "2", "scoring-mine", mode="helm")
    state = status.environment_state(settings, "qa")
    assert (state.champion, state.live, state.in_sync) == ("2", "2", True)
