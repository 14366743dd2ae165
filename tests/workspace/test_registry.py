"""The registry helpers (workspace/registry.py) in-process against a real MLflow store (sqlite in a temp dir),
so that the mutation tester sees them: one training run one version, where a registration got to (pending,
complete, not promoted), the versions that show a champion existed, listing newest first, resolving NAME:VERSION /
NAME@ALIAS / NAME, and a version that is in use or holds an alias never deleted."""
from __future__ import annotations

import pytest

from ml_service.errors import MLOpsError
from tests.conftest import fresh_store
from ml_service.workspace import faults, registry

pytestmark = [pytest.mark.integration]
NAME = "registry_test_model"


@pytest.fixture
def store(tmp_path, monkeypatch):
    import mlflow

    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    monkeypatch.delenv("MLOPS_TEST_PAUSE", raising=False)
    uri = fresh_store(tmp_path / "mlflow.db")
    previous = (mlflow.get_tracking_uri(), mlflow.get_registry_uri())
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", uri)
    mlflow.set_tracking_uri(uri)  # mlflow.register_model (used by registry.register_model) uses these
    mlflow.set_registry_uri(uri)
    client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
    experiment = client.create_experiment("registry", artifact_location=(tmp_path / "artifacts").as_uri())
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    yield {"client": client, "experiment": experiment, "model_uri": model_dir.as_uri()}
    mlflow.set_tracking_uri(previous[0])
    mlflow.set_registry_uri(previous[1])


def new_run(store) -> str:
    return store["client"].create_run(store["experiment"]).info.run_id


def add_version(store, state: str | None = registry.COMPLETE, name: str = NAME, **tags) -> str:
    """A version created directly in the store (as `mlops model register` by hand or an older run would)."""
    client = store["client"]
    if not client.search_registered_models(f"name='{name}'"):
        client.create_registered_model(name)
    run = new_run(store)
    all_tags = {"run_id": run, **tags}
    if state is not None:
        all_tags[registry.REGISTRATION_TAG] = state
    return str(client.create_model_version(name, store["model_uri"], run_id=run, tags=all_tags).version)


def champion(store, name: str = NAME) -> str | None:
    found = registry.get_alias(store["client"], name, registry.CHAMPION)
    return None if found is None else str(found.version)


def aliases(store) -> dict[str, str]:
    return {a: str(v) for a, v in store["client"].get_registered_model(NAME).aliases.items()}


def tags_of(store, version: str) -> dict:
    return store["client"].get_model_version(NAME, version).tags


def test_get_alias_is_the_version_holding_it_and_none_for_a_missing_model_or_alias(store):
    assert registry.get_alias(store["client"], "no_such_model", registry.CHAMPION) is None
    add_version(store)
    second = add_version(store)
    assert registry.get_alias(store["client"], NAME, registry.CHAMPION) is None
    store["client"].set_registered_model_alias(NAME, "qa", second)
    found = registry.get_alias(store["client"], NAME, "qa")
    assert (found.name, str(found.version)) == (NAME, second)


def test_versions_for_run_finds_only_that_runs_version(store):
    add_version(store)
    second = add_version(store)
    run = tags_of(store, second)["run_id"]
    assert [str(v.version) for v in registry.versions_for_run(store["client"], NAME, run)] == [second]
    assert registry.versions_for_run(store["client"], NAME, new_run(store)) == []
    # a run id the search cannot even parse is a run with no version, not a crash
    assert registry.versions_for_run(store["client"], NAME, "it's") == []


def test_register_model_tags_the_version_moves_the_aliases_and_refuses_a_second_version(store):
    client = store["client"]
    run = new_run(store)
    version = registry.register_model(client, NAME, store["model_uri"], run, {"metric": "mse", "mse": "1.5"})
    assert str(version.version) == "1" and champion(store) == "1"
    # the returned version is read back after completion: it shows the complete state
    assert version.tags[registry.REGISTRATION_TAG] == registry.COMPLETE
    assert {k: tags_of(store, "1").get(k) for k in ("metric", "mse", "run_id", registry.REGISTRATION_TAG)} == {
        "metric": "mse", "mse": "1.5", "run_id": run, registry.REGISTRATION_TAG: registry.COMPLETE}
    with pytest.raises(registry.RegistryError) as refused:
        registry.register_model(client, NAME, store["model_uri"], run, {})
    assert str(refused.value) == (f"run {run} is already registered as {NAME} version 1; "
                                  "a run can be registered only once")
    assert isinstance(refused.value, MLOpsError)
    assert [str(v.version) for v in client.search_model_versions(f"name='{NAME}'")] == ["1"]
    # other aliases, champion left where it is
    other = registry.register_model(client, NAME, store["model_uri"], new_run(store), {}, aliases=("qa", "staging"))
    assert champion(store) == "1"
    assert sorted((a, str(v)) for a, v in client.get_registered_model(NAME).aliases.items()) == [
        ("champion", "1"), ("qa", str(other.version)), ("staging", str(other.version))]


class Killed(BaseException):
    """Stands in for the kill the pause point waits for (a test seam, ml_service/workspace/faults.py)."""


def test_a_registration_killed_after_the_version_is_created_stays_pending_without_moving_the_alias(
        store, tmp_path, monkeypatch):
    client = store["client"]
    registry.register_model(client, NAME, store["model_uri"], new_run(store), {})
    marker = tmp_path / "paused"
    monkeypatch.setenv("MLOPS_TEST_PAUSE", f"after-version:{marker}")

    def killed(seconds):
        raise Killed()

    monkeypatch.setattr(faults.time, "sleep", killed)
    with pytest.raises(Killed):
        registry.register_model(client, NAME, store["model_uri"], new_run(store), {})
    assert marker.is_file()  # it paused at the point named "after-version"
    assert tags_of(store, "2")[registry.REGISTRATION_TAG] == registry.PENDING
    assert champion(store) == "1"


def test_complete_registration_moves_every_alias_and_marks_it_complete(store):
    client = store["client"]
    add_version(store)
    pending = client.get_model_version(NAME, add_version(store, registry.PENDING))
    done = registry.complete_registration(client, pending)
    assert champion(store) == "2" and done.tags[registry.REGISTRATION_TAG] == registry.COMPLETE
    assert tags_of(store, "2")[registry.REGISTRATION_TAG] == registry.COMPLETE
    again = registry.complete_registration(client, pending, aliases=("qa",))
    assert str(again.version) == "2" and aliases(store) == {"champion": "2", "qa": "2"}


def test_close_without_promotion_records_the_state_and_the_reason(store):
    client = store["client"]
    pending = client.get_model_version(NAME, add_version(store, registry.PENDING))
    registry.close_without_promotion(client, pending, "not promoted: " + "x" * 6000)
    tags = tags_of(store, "1")
    assert tags[registry.REGISTRATION_TAG] == registry.NOT_PROMOTED
    assert tags[registry.DECISION_TAG] == ("not promoted: " + "x" * 6000)[:5000]
    assert champion(store) is None


def test_the_versions_that_show_a_champion_existed_newest_first(store):
    client = store["client"]
    assert registry.versions_missing_a_champion(client, NAME) == []  # no model: a first run
    add_version(store, registry.PENDING)
    add_version(store, registry.NOT_PROMOTED)
    assert registry.versions_missing_a_champion(client, NAME) == []  # never promoted: still a first run
    add_version(store)  # 3: promoted here
    add_version(store, state=None)  # 4: registered by hand
    add_version(store, registry.PENDING)  # 5
    assert registry.versions_missing_a_champion(client, NAME) == ["4", "3"]
    assert registry.versions_missing_a_champion(client, NAME, exclude="4") == ["3"]
    client.set_registered_model_alias(NAME, registry.CHAMPION, "3")
    assert registry.versions_missing_a_champion(client, NAME) == []


def test_the_missing_champion_message_names_the_versions_and_the_fix():
    assert registry.missing_champion_message("m", ["3", "1"]) == (
        "m has registered versions (3, 1) but no 'champion' alias (was it deleted?): refusing to promote, "
        "because a missing champion is not a first run. Choose the champion with `mlops model promote m:VERSION`, "
        "then retrain")
    many = registry.missing_champion_message("m", [str(n) for n in range(12, 0, -1)])
    assert "(12, 11, 10, 9, 8, 7, 6, 5, 4, 3, ...)" in many
    ten = registry.missing_champion_message("m", [str(n) for n in range(10, 0, -1)])
    assert "(10, 9, 8, 7, 6, 5, 4, 3, 2, 1)" in ten
    eleven = registry.missing_champion_message("m", [str(n) for n in range(11, 0, -1)])
    assert "(11, 10, 9, 8, 7, 6, 5, 4, 3, 2, ...)" in eleven


def test_list_versions_newest_first_with_their_aliases_run_and_metric(store):
    client = store["client"]
    assert registry.list_versions(client, NAME) == []
    assert registry.list_versions(client, "it's") == []  # a name the search cannot parse: nothing, not a crash
    for _ in range(10):
        add_version(store, metric="mse")
    add_version(store, name="other_model")
    client.set_registered_model_alias(NAME, registry.CHAMPION, "9")
    client.set_registered_model_alias(NAME, "qa", "9")
    client.set_registered_model_alias(NAME, "production", "2")
    listed = registry.list_versions(client, NAME)
    assert [v.version for v in listed] == [str(n) for n in range(10, 0, -1)]  # 10 before 9: by number
    nine, two = listed[1], listed[8]
    assert (nine.aliases, two.aliases, listed[0].aliases) == (["champion", "qa"], ["production"], [])
    found = client.get_model_version(NAME, "9")
    assert nine == registry.VersionSummary(name=NAME, version="9", aliases=["champion", "qa"],
                                           run_id=found.tags["run_id"], metric="mse",
                                           created=int(found.creation_timestamp), tags=dict(found.tags))
    assert nine.created > 0 and nine.run_id
    bare = client.create_model_version(NAME, store["model_uri"])  # no tags at all
    assert registry.list_versions(client, NAME)[0] == registry.VersionSummary(
        name=NAME, version=str(bare.version), aliases=[], run_id="", metric="",
        created=int(bare.creation_timestamp), tags={})


def test_resolve_version_by_number_alias_or_latest(store):
    client = store["client"]
    for _ in range(10):
        add_version(store)
    client.set_registered_model_alias(NAME, registry.CHAMPION, "3")
    assert str(registry.resolve_version(client, f"{NAME}:2").version) == "2"
    assert str(registry.resolve_version(client, f"{NAME}@champion").version) == "3"
    assert str(registry.resolve_version(client, NAME).version) == "10"  # the latest by number, not by text
    with pytest.raises(registry.RegistryError) as none:
        registry.resolve_version(client, "no_such_model")
    assert str(none.value) == "model 'no_such_model' has no registered versions"
    # a reference with more than one separator is a model that does not exist, never a crash
    for ref in (f"{NAME}:99", f"{NAME}@nothing", "no_such_model:1", f"{NAME}:1:2", f"{NAME}@champion@qa"):
        with pytest.raises(registry.RegistryError) as missing:
            registry.resolve_version(client, ref)
        assert str(missing.value).startswith(f"cannot find model '{ref}': ")
        assert missing.value.__cause__ is None and missing.value.__suppress_context__


def test_a_version_in_use_or_holding_an_alias_is_never_deleted(store):
    client = store["client"]
    for _ in range(4):
        add_version(store)
    client.set_registered_model_alias(NAME, registry.CHAMPION, "1")
    client.set_registered_model_alias(NAME, "qa", "1")
    in_use = {"1": {"qa"}, "2": {"production", "qa"}}
    with pytest.raises(registry.RegistryError) as both:
        registry.delete_version(client, NAME, "1", in_use)
    assert str(both.value) == (f"refusing to delete {NAME} version 1: in use by qa; "
                               "holds alias(es) champion, qa")
    with pytest.raises(registry.RegistryError) as live:
        registry.delete_version(client, NAME, "2", in_use)
    assert str(live.value) == f"refusing to delete {NAME} version 2: in use by production, qa"
    client.set_registered_model_alias(NAME, "production", "3")
    with pytest.raises(registry.RegistryError) as alias:
        registry.delete_version(client, NAME, "3", in_use)
    assert str(alias.value) == f"refusing to delete {NAME} version 3: holds alias(es) production"
    with pytest.raises(registry.RegistryError) as missing:
        registry.delete_version(client, NAME, "9", in_use)
    assert str(missing.value) == f"model '{NAME}' has no version 9"
    assert missing.value.__cause__ is None and missing.value.__suppress_context__
    assert sorted(int(v.version) for v in client.search_model_versions(f"name='{NAME}'")) == [1, 2, 3, 4]
    registry.delete_version(client, NAME, "4", in_use)
    assert sorted(int(v.version) for v in client.search_model_versions(f"name='{NAME}'")) == [1, 2, 3]
