"""Choosing the champion by hand (workspace/champion.py, `mlops model promote`): only a READY version, under the
registration lock, recorded on the version and as a run of `mlops-registry`; promoting the champion again changes
and records nothing. In-process against a real MLflow sqlite store (the `workspace` fixture)."""
from __future__ import annotations

import sqlite3

import pytest

from ml_service.cli import main
from ml_service.workspace import champion, registry, tracking
from tests.workspace.test_promotion import lock_files_held

pytestmark = pytest.mark.integration
NAME = "champion_test_model"


@pytest.fixture
def client(workspace):
    """The workspace's client, with versions 1..3 of NAME registered (no champion yet)."""
    found = tracking.connect(workspace)
    found.create_registered_model(NAME)
    source = workspace.artifact_root.as_uri()
    for _ in range(3):
        found.create_model_version(NAME, source, tags={registry.REGISTRATION_TAG: registry.COMPLETE})
    return found


def holder(client) -> str | None:
    found = registry.get_alias(client, NAME, registry.CHAMPION)
    return None if found is None else str(found.version)


def records(client) -> list[dict]:
    experiment = client.get_experiment_by_name(champion.EXPERIMENT)
    if experiment is None:
        return []
    return [r.data.tags for r in client.search_runs([experiment.experiment_id], "tags.`mlops.kind` = 'promotion'")]


def test_promote_moves_champion_and_records_who_from_which_version_and_why(workspace, client, monkeypatch):
    first = champion.promote(workspace, NAME, "2", "the first choice")
    assert (first.previous, first.changed, holder(client)) == (None, True, "2")
    monkeypatch.setenv("MLOPS_USER", "ops@example.com")
    from ml_service.config import load_settings

    second = champion.promote(load_settings(), NAME, "3", "restore after the deletion")
    assert (second.name, second.version, second.previous, second.changed) == (NAME, "3", "2", True)
    assert holder(client) == "3"
    tags = client.get_model_version(NAME, "3").tags
    assert tags["mlops.promoted_by"] == "ops@example.com" and tags["mlops.promoted_at"].endswith("Z")
    assert tags[registry.DECISION_TAG] == "promoted by hand by ops@example.com: restore after the deletion"
    assert tags[registry.REGISTRATION_TAG] == registry.COMPLETE
    assert client.get_model_version(NAME, "2").tags["mlops.promoted_by"] == "unknown"
    made = sorted(records(client), key=lambda t: t["model_version"])
    assert [(t["model_version"], t["previous_champion"], t["reason"]) for t in made] == [
        ("2", "", "the first choice"), ("3", "2", "restore after the deletion")]
    assert made[1]["mlflow.user"] == "ops@example.com" and "mlflow.user" not in made[0]
    assert client.get_run(second.record_id).info.status == "FINISHED"


def test_promoting_the_champion_again_changes_and_records_nothing(workspace, client):
    champion.promote(workspace, NAME, "1")
    again = champion.promote(workspace, NAME, "1", "again")
    assert (again.previous, again.changed, again.record_id) == ("1", False, "")
    assert len(records(client)) == 1 and holder(client) == "1"
    assert client.get_model_version(NAME, "1").tags[registry.DECISION_TAG] == "promoted by hand by unknown"


@pytest.mark.parametrize("status", ["PENDING_REGISTRATION", "FAILED_REGISTRATION"])
def test_a_version_that_is_not_ready_cannot_be_the_champion(workspace, client, status):
    champion.promote(workspace, NAME, "1")
    with sqlite3.connect(workspace.tracking_uri[len("sqlite:///"):]) as db:
        db.execute("UPDATE model_versions SET status = ? WHERE name = ? AND version = 2", (status, NAME))
    with pytest.raises(registry.RegistryError) as refused:
        champion.promote(workspace, NAME, "2")
    assert str(refused.value) == f"{NAME} version 2 is {status}, not READY: it cannot be the champion"
    assert holder(client) == "1" and len(records(client)) == 1


def test_a_missing_version_is_refused_and_nothing_changes(workspace, client):
    champion.promote(workspace, NAME, "1")
    with pytest.raises(registry.RegistryError) as refused:
        champion.promote(workspace, NAME, "7")
    assert str(refused.value) == f"model '{NAME}' has no version 7"
    assert holder(client) == "1" and len(records(client)) == 1


def test_the_alias_moves_only_while_the_registration_lock_is_held(workspace, client, monkeypatch):
    """The same lock as a retrain's registration: a hand promotion never interleaves with a compare-and-set."""
    seen = []
    real = registry.complete_registration

    def moving_aliases(*args, **kwargs):
        seen.append(lock_files_held(workspace.state_dir))
        return real(*args, **kwargs)

    monkeypatch.setattr(registry, "complete_registration", moving_aliases)
    champion.promote(workspace, NAME, "3")
    assert seen == [[True]] and holder(client) == "3"
    assert lock_files_held(workspace.state_dir) == [False]


def test_the_cli_promotes_by_name_and_version_and_refuses_a_reference_without_one(workspace, client, capsys):
    assert main(["model", "promote", f"{NAME}:2", "--reason", "by hand"]) == 0
    assert holder(client) == "2" and records(client)[0]["reason"] == "by hand"
    assert main(["model", "promote", NAME]) == 2  # NAME alone: which version?
    assert main(["model", "promote", f"{NAME}:9"]) == 1
    assert holder(client) == "2" and len(records(client)) == 1
    assert main(["model", "delete", f"{NAME}:2"]) == 1  # it holds `champion`
    assert main(["model", "delete", NAME]) == 2
    assert main(["model", "delete", f"{NAME}:1"]) == 0
    assert sorted(str(v.version) for v in client.search_model_versions(f"name='{NAME}'")) == ["2", "3"]


def test_the_cli_takes_a_models_uri_and_refuses_a_version_that_is_not_ascii_digits(workspace, client):
    assert main(["model", "promote", f"models:/{NAME}/3"]) == 0
    assert holder(client) == "3" and len(records(client)) == 1
    for bad in (f"{NAME}:\u0661", f"{NAME}:2\n", ":2", f"{NAME}:2:2"):
        assert main(["model", "promote", bad]) == 2, bad
        assert main(["model", "delete", bad]) == 2, bad
    assert holder(client) == "3" and len(records(client)) == 1
    assert sorted(str(v.version) for v in client.search_model_versions(f"name='{NAME}'")) == ["1", "2", "3"]


def test_model_list_and_show_without_a_name_read_the_selected_projects_registered_model(
        workspace, client, capsys, monkeypatch):
    """The selected project's registered model name (here NAME, not the project's folder name) and its champion."""
    monkeypatch.setenv("MLOPS_MODEL_NAME", NAME)
    champion.promote(workspace, NAME, "2")
    client.set_registered_model_alias(NAME, "production", "3")
    capsys.readouterr()
    assert main(["model", "list"]) == 0
    assert [line.split()[0] for line in capsys.readouterr().out.splitlines()[1:]] == ["3", "2", "1"]
    assert main(["model", "show"]) == 0
    shown = dict(line.split(":", 1) for line in capsys.readouterr().out.splitlines()[:2])
    assert (shown["name"].strip(), shown["version"].strip()) == (NAME, "2")
