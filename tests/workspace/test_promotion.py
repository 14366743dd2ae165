"""The platform's promotion rule (workspace/promotion.py): strictly better, in the project's direction, by more
than min_improvement, on the candidate's own test split; the tags every version carries; registering and moving
`champion` under the registration lock, as a compare-and-set against the champion the decision was made on.

The rule itself is pure (decide, direction); the rest runs in-process against a real MLflow store (sqlite in a
temp dir, marked integration), so that the mutation tester sees it."""
from __future__ import annotations

import math
import tempfile

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ml_service.workspace import promotion, registry
from ml_service.workspace.promotion import decide, direction
from tests.conftest import fresh_store

pytestmark = [pytest.mark.filterwarnings("ignore:Add type hints:UserWarning")]
integration = pytest.mark.integration
NAME = "promotion_test_model"


@pytest.fixture
def store(tmp_path, monkeypatch):
    import mlflow

    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    uri = fresh_store(tmp_path / "mlflow.db")
    client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
    experiment = client.create_experiment("promotion", artifact_location=(tmp_path / "artifacts").as_uri())
    return {"uri": uri, "client": client, "experiment": experiment, "tmp": tmp_path}


def scoring(store) -> dict:
    """The context a champion is re-scored in (its experiment: the champion's provenance is checked)."""
    return {"tracking_uri": store["uri"], "model_name": NAME, "experiment_name": "promotion"}


def context_for(store, **extra) -> dict:
    client = store["client"]
    parent = client.create_run(store["experiment"]).info.run_id
    train = client.create_run(store["experiment"], tags={"mlflow.parentRunId": parent}).info.run_id
    register = client.create_run(store["experiment"], tags={"mlflow.parentRunId": parent}).info.run_id
    return {"tracking_uri": store["uri"], "model_name": NAME, "experiment_name": "promotion",
            "parent_run_id": parent, "run_id": register, "source_runs": {"train": train},
            "state_dir": str(store["tmp"] / "state"), "git": {"commit": "c0ffee" * 6 + "abcd"},
            "datasets": [{"name": "data", "digest": "d1gest", "source": "data.csv"}], **extra}


def log_model():
    import mlflow.pyfunc

    class Constant(mlflow.pyfunc.PythonModel):
        def predict(self, context, model_input, params=None):
            return [1.0] * len(model_input)

    return mlflow.pyfunc.log_model(name="model", python_model=Constant(), pip_requirements=[]).model_uri


def champion(store):
    version = registry.get_alias(store["client"], NAME, registry.CHAMPION)
    return str(version.version) if version is not None else None


def versions(store) -> list[str]:
    return sorted(str(v.version) for v in store["client"].search_model_versions(f"name='{NAME}'"))


@integration
def test_the_first_candidate_registers_with_every_tag_and_becomes_champion(store):
    context = context_for(store, build_id="42", build_uri="mlops-ci://run/42")
    evaluated = promotion.evaluate_candidate(context, {"version": None}, "mse", 3.5, rescore=lambda d: 1 / 0)
    assert evaluated["values"]["promote"] is True and evaluated["values"]["champion_version"] == ""
    assert evaluated["metrics"] == {"candidate_mse": 3.5}
    result = promotion.register_candidate(context, log_model, "mse", 3.5, decided_against=None,
                                          project_tags={"team": "ml", "empty": ""},
                                          reason=evaluated["values"]["reason"])
    assert result["values"]["registered_version"] == "1" and "registered promotion_test_model version 1" in \
        result["outcome"] and result["outcome"].endswith("champion moved")
    assert champion(store) == "1"
    tags = store["client"].get_model_version(NAME, "1").tags
    expected = {"team": "ml", "experiment_name": "promotion", "metric": "mse", "mse": "3.5",
                "pipeline_run_id": context["parent_run_id"], "git_commit": context["git"]["commit"],
                "dataset_name": "data", "dataset_digest": "d1gest", "dataset_source": "data.csv",
                "BuildId": "42", "BuildUri": "mlops-ci://run/42"}
    assert {k: tags.get(k) for k in expected} == expected and "empty" not in tags
    assert tags["run_id"] == context["source_runs"]["train"]


@integration
def test_a_candidate_is_compared_with_the_champion_rescored_on_its_split(store):
    first = context_for(store)
    promotion.register_candidate(first, log_model, "mse", 3.0, decided_against=None)
    seen = []

    def rescore(model_dir):
        seen.append((model_dir / "MLmodel").is_file())
        return 2.0

    worse = promotion.evaluate_candidate(context_for(store), {"version": "1"}, "mse", 2.5, rescore)
    assert seen == [True]  # the champion's registered files were scored
    assert worse["values"] == {"promote": False, "champion_version": "1", "reason": worse["outcome"]}
    assert worse["metrics"] == {"candidate_mse": 2.5, "champion_mse": 2.0}
    assert worse["outcome"].startswith("not promoted") and "2.5" in worse["outcome"] and "2.0" in worse["outcome"]
    equal = promotion.evaluate_candidate(context_for(store), {"version": "1"}, "mse", 2.0, rescore)
    assert equal["values"]["promote"] is False
    better = promotion.evaluate_candidate(context_for(store), {"version": "1"}, "mse", 1.5, rescore)
    assert better["values"]["promote"] is True and better["outcome"].startswith("promoted")
    higher = promotion.evaluate_candidate(context_for(store), {"version": "1"}, "auc", 2.5, rescore,
                                          higher_is_better=True)
    assert higher["values"]["promote"] is True
    margin = promotion.evaluate_candidate(context_for(store), {"version": "1"}, "mse", 1.95, rescore,
                                          min_improvement=0.1)
    assert margin["values"]["promote"] is False


@integration
def test_a_champion_that_cannot_score_the_split_is_beaten_and_records_no_number(store):
    promotion.register_candidate(context_for(store), log_model, "mse", 3.0, decided_against=None)

    def broken(model_dir):
        raise ValueError("the data changed shape")

    result = promotion.evaluate_candidate(context_for(store), {"version": "1"}, "mse", 9.0, broken)
    assert result["values"]["promote"] is True and result["metrics"] == {"candidate_mse": 9.0}
    assert math.isnan(promotion.rescore_champion(scoring(store), "1", broken))


@integration
def test_registration_is_a_compare_and_set_against_the_champion_decided_on(store):
    promotion.register_candidate(context_for(store), log_model, "mse", 3.0, decided_against=None)
    promotion.register_candidate(context_for(store), log_model, "mse", 2.0, decided_against="1")
    assert champion(store) == "2" and versions(store) == ["1", "2"]
    # decided against v1, but v2 is the champion now: re-scored against v2 (2.0 on this split): 2.5 loses
    late = promotion.register_candidate(context_for(store), log_model, "mse", 2.5, decided_against="1",
                                        rescore=lambda d: 2.0)
    assert late["values"]["registered_version"] == "" and "re-decided" in late["outcome"]
    assert champion(store) == "2" and versions(store) == ["1", "2"]
    # without a way to re-score, a moved champion refuses
    blind = promotion.register_candidate(context_for(store), log_model, "mse", 0.1, decided_against="1")
    assert blind["values"]["registered_version"] == "" and "changed from v1 to v2" in blind["outcome"]
    # re-scored and still better: registered, champion moved
    won = promotion.register_candidate(context_for(store), log_model, "mse", 1.0, decided_against="1",
                                       rescore=lambda d: 2.0)
    assert won["values"]["registered_version"] == "3" and champion(store) == "3" and "re-decided" in won["outcome"]


@integration
def test_a_removed_champion_stops_promotion_until_one_is_chosen(store):
    promotion.register_candidate(context_for(store), log_model, "mse", 3.0, decided_against=None)
    store["client"].delete_registered_model_alias(NAME, registry.CHAMPION)
    with pytest.raises(registry.RegistryError):
        promotion.evaluate_candidate(context_for(store), {"version": None}, "mse", 1.0, rescore=lambda d: 1.0)
    with pytest.raises(registry.RegistryError):
        promotion.register_candidate(context_for(store), log_model, "mse", 1.0, decided_against=None)
    assert versions(store) == ["1"] and champion(store) is None
    removed = promotion.register_candidate(context_for(store), log_model, "mse", 1.0, decided_against="1",
                                           rescore=lambda d: 2.0)
    assert removed["values"]["registered_version"] == "" and "was removed" in removed["outcome"]


def test_decide_states_the_rule_and_both_numbers():
    assert promotion.decide("mse", 1.0, None) == promotion.Decision(
        True, "promoted: no champion yet; candidate mse 1.0000")
    assert promotion.decide("mse", float("nan"), None) == promotion.Decision(
        False, "not promoted: candidate mse is nan")
    assert promotion.decide("mse", float("inf"), 2.0, champion_version="1").promote is False
    versus = "candidate mse 1.5000 vs champion v3 2.0000 on the same test split"
    assert promotion.decide("mse", 1.5, 2.0, champion_version="3") == promotion.Decision(True, f"promoted: {versus}")
    worse = "candidate mse 2.5000 vs champion v3 2.0000 on the same test split"
    assert promotion.decide("mse", 2.5, 2.0, champion_version="3") == promotion.Decision(
        False, f"not promoted: {worse} (not strictly better)")
    assert promotion.decide("mse", 2.0, 2.0, champion_version="3").promote is False  # equal is not better
    assert promotion.decide("mse", 9.0, float("nan"), champion_version="3") == promotion.Decision(
        True, "promoted: candidate mse 9.0000 vs champion v3 nan on the same test split")
    # higher is better: a lower candidate loses, a higher one wins
    assert promotion.decide("auc", 1.5, 2.0, True, "3").promote is False
    assert promotion.decide("auc", 2.5, 2.0, True, "3").promote is True
    assert promotion.decide("auc", 0.25, 0.5, higher_is_better=True).promote is False
    # a margin: better by less than it is not enough, and the reason names it
    assert promotion.decide("mse", 1.95, 2.0, False, "3", min_improvement=0.1) == promotion.Decision(
        False, "not promoted: candidate mse 1.9500 vs champion v3 2.0000 on the same test split "
        "(improvement 0.0500 <= min_improvement 0.1)")
    assert promotion.decide("mse", 1.85, 2.0, False, "3", min_improvement=0.1).promote is True
    assert promotion.decide("mse", 0.5, 1.0).promote is True  # by default lower is better, no margin


def test_direction_reads_either_key_and_defaults_to_lower_is_better():
    assert promotion.direction({}) is False
    assert promotion.direction({"higher_is_better": True}) is True
    assert promotion.direction({"higher_is_better": 0}) is False
    assert promotion.direction({"lower_is_better": False}) is True
    assert promotion.direction({"lower_is_better": True}) is False
    assert promotion.direction({"higher_is_better": True, "lower_is_better": True}) is True


@integration
def test_a_champion_that_cannot_score_says_why(store, capsys):
    promotion.register_candidate(context_for(store), log_model, "mse", 3.0, decided_against=None)
    capsys.readouterr()
    seen = []

    def broken(model_dir):
        seen.append(model_dir)
        raise ValueError("the data changed shape")

    value = promotion.rescore_champion(scoring(store), "1", broken)
    assert math.isnan(value)
    assert capsys.readouterr().out == ("champion v1 could not be scored on this test split: "
                                       "ValueError: the data changed shape\n")
    assert not seen[0].exists()  # the downloaded champion is thrown away
    assert promotion.rescore_champion(scoring(store), "1", lambda d: 4) == 4.0


@integration
def test_evaluate_refuses_a_missing_champion_with_the_command_that_fixes_it(store):
    promotion.register_candidate(context_for(store), log_model, "mse", 3.0, decided_against=None)
    store["client"].delete_registered_model_alias(NAME, registry.CHAMPION)
    with pytest.raises(registry.RegistryError) as refused:
        promotion.evaluate_candidate(context_for(store), {}, "mse", 1.0, rescore=lambda d: 1.0)
    assert str(refused.value) == registry.missing_champion_message(NAME, ["1"])
    with pytest.raises(registry.RegistryError) as again:
        promotion.register_candidate(context_for(store), log_model, "mse", 1.0, decided_against=None)
    assert str(again.value) == registry.missing_champion_message(NAME, ["1"])


@integration
def test_evaluate_records_both_numbers_and_the_decision(store):
    promotion.register_candidate(context_for(store), log_model, "mse", 3.0, decided_against=None)
    result = promotion.evaluate_candidate(context_for(store), {"version": 1}, "mse", 1.5, lambda d: 2.0)
    reason = "promoted: candidate mse 1.5000 vs champion v1 2.0000 on the same test split"
    assert result == {"values": {"promote": True, "champion_version": "1", "reason": reason},
                      "metrics": {"candidate_mse": 1.5, "champion_mse": 2.0}, "outcome": reason}
    higher = promotion.evaluate_candidate(context_for(store), {"version": "1"}, "auc", 1.5, lambda d: 2.0,
                                          higher_is_better=True)
    assert higher["values"]["promote"] is False
    first = promotion.evaluate_candidate(context_for(store, model_name="a_new_model"), {"version": None}, "mse",
                                         float("nan"), lambda d: 1 / 0)
    assert first["values"] == {"promote": False, "champion_version": "",
                               "reason": "not promoted: candidate mse is nan"}


@integration
def test_the_registration_lock_is_an_exclusive_file_lock_in_the_state_dir(store, tmp_path, monkeypatch):
    import fcntl

    state = tmp_path / "nested" / "state"
    context = {"tracking_uri": store["uri"], "state_dir": str(state)}

    def held_elsewhere(path) -> bool:
        with open(path) as other:
            try:
                fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            fcntl.flock(other, fcntl.LOCK_UN)
            return False

    with promotion.registry_lock(context, "a"):
        files = list((state / "locks").glob("register-*.lock"))
        assert len(files) == 1 and held_elsewhere(files[0])
        with promotion.registry_lock(context, "b"):  # another model is not blocked
            assert len(list((state / "locks").glob("register-*.lock"))) == 2
    assert not held_elsewhere(files[0])
    with promotion.registry_lock(context, "a"):  # again, in the same folder
        assert held_elsewhere(files[0])
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    with promotion.registry_lock({"tracking_uri": store["uri"]}, "a"):
        assert len(list((tmp_path / "tmp" / "locks").glob("register-*.lock"))) == 1


@integration
def test_registration_tags_without_datasets_build_or_commit(store):
    context = {"experiment_name": "e", "parent_run_id": "p", "git": {}}
    assert promotion.registration_tags(context, "mse", 2, {"team": "ml"}) == {
        "team": "ml", "experiment_name": "e", "metric": "mse", "mse": "2.0", "pipeline_run_id": "p"}
    # the project's tags cannot override the ones every version carries
    assert promotion.registration_tags(context, "mse", 2, {"metric": "other"})["metric"] == "mse"


def killed_after_the_version(store, context, alias: bool) -> str:
    """A version of the context's training run left pending, as a kill after it was created leaves it
    (alias=True: killed after the alias moved, before the tag was set)."""
    client = store["client"]
    if not client.search_registered_models(f"name='{NAME}'"):
        client.create_registered_model(NAME)
    train = context["source_runs"]["train"]
    version = client.create_model_version(NAME, (store["tmp"] / "artifacts").as_uri(), run_id=train, tags={
        "run_id": train, registry.REGISTRATION_TAG: registry.PENDING, "pipeline_run_id": "earlier-run"})
    if alias:
        client.set_registered_model_alias(NAME, registry.CHAMPION, version.version)
    return str(version.version)


@integration
def test_a_run_killed_after_the_alias_moved_is_finished_and_reported_once(store):
    context = context_for(store)
    version = killed_after_the_version(store, context, alias=True)
    done = promotion.register_candidate(context, log_model, "mse", 1.0, decided_against=None)
    assert done == {"values": {"registered_version": version},
                    "outcome": f"{NAME} version {version} (run {context['source_runs']['train']}) "
                               "is already the champion"}
    assert store["client"].get_model_version(NAME, version).tags[registry.REGISTRATION_TAG] == registry.COMPLETE
    again = promotion.register_candidate(context, log_model, "mse", 1.0, decided_against=None)
    assert again["values"]["registered_version"] == "" and versions(store) == [version]


@integration
def test_a_run_killed_before_the_alias_moved_completes_its_own_version(store):
    context = context_for(store)
    version = killed_after_the_version(store, context, alias=False)
    done = promotion.register_candidate(context, log_model, "mse", 1.0, decided_against=None,
                                        reason="promoted: no champion yet; candidate mse 1.0000")
    assert done == {"values": {"registered_version": version},
                    "outcome": f"registered {NAME} version {version} (no champion yet; candidate mse 1.0000); "
                               "champion moved (completed the registration interrupted in pipeline run earlier-run)"}
    assert champion(store) == version and versions(store) == [version]
    tags = store["client"].get_model_version(NAME, version).tags
    assert tags[registry.REGISTRATION_TAG] == registry.COMPLETE


@integration
def test_a_killed_registration_that_loses_on_rerun_is_closed_as_not_promoted(store, capsys):
    promotion.register_candidate(context_for(store), log_model, "mse", 3.0, decided_against=None)
    promotion.register_candidate(context_for(store), log_model, "mse", 2.0, decided_against="1")
    context = context_for(store)
    version = killed_after_the_version(store, context, alias=False)
    lost = promotion.register_candidate(context, log_model, "mse", 2.5, decided_against="1", rescore=lambda d: 2.0)
    reason = ("not promoted: candidate mse 2.5000 vs champion v2 2.0000 on the same test split (not strictly "
              "better) (re-decided: the champion changed from v1 to v2)")
    assert lost == {"values": {"registered_version": ""}, "outcome": reason}
    assert reason in capsys.readouterr().out
    tags = store["client"].get_model_version(NAME, version).tags
    assert (tags[registry.REGISTRATION_TAG], tags[registry.DECISION_TAG]) == (registry.NOT_PROMOTED, reason)
    assert champion(store) == "2"
    # its run is registered now (not promoted): a further rerun says so and registers nothing
    again = promotion.register_candidate(context, log_model, "mse", 0.1, decided_against="2")
    assert again["outcome"] == (f"not promoted: run {context['source_runs']['train']} is already registered as "
                                f"{NAME} version {version}, which is not the champion (v2)")
    assert champion(store) == "2" and versions(store) == ["1", "2", version]


@integration
def test_a_killed_registration_whose_champion_was_removed_or_moved_is_closed(store):
    promotion.register_candidate(context_for(store), log_model, "mse", 3.0, decided_against=None)
    context = context_for(store)
    version = killed_after_the_version(store, context, alias=False)
    promotion.register_candidate(context_for(store), log_model, "mse", 2.0, decided_against="1")
    moved = promotion.register_candidate(context, log_model, "mse", 1.0, decided_against="1")
    assert moved["outcome"] == "not promoted: the champion changed from v1 to v3 while this run evaluated"
    assert store["client"].get_model_version(NAME, version).tags[registry.DECISION_TAG] == moved["outcome"]
    other = context_for(store)
    pending = killed_after_the_version(store, other, alias=False)
    store["client"].delete_registered_model_alias(NAME, registry.CHAMPION)
    removed = promotion.register_candidate(other, log_model, "mse", 1.0, decided_against="3", rescore=lambda d: 9.0)
    assert removed["outcome"] == ("not promoted: champion v3 was removed while this run evaluated; set one with "
                                  "`mlops model promote` and retrain")
    tags = store["client"].get_model_version(NAME, pending).tags
    assert tags[registry.REGISTRATION_TAG] == registry.NOT_PROMOTED
    assert tags[registry.DECISION_TAG] == removed["outcome"]


@integration
def test_a_champion_set_meanwhile_on_a_first_run_is_compared_with_and_the_decision_recorded(store):
    promotion.register_candidate(context_for(store), log_model, "mse", 3.0, decided_against=None)
    context = context_for(store)
    runs = []

    def logging_model():
        import mlflow

        runs.append(mlflow.active_run().info.run_id)
        return log_model()

    won = promotion.register_candidate(context, logging_model, "mse", 1.0, decided_against=None,
                                       rescore=lambda d: 2.0, reason="promoted: no champion yet")
    reason = "promoted: candidate mse 1.0000 vs champion v1 2.0000 on the same test split"
    assert won == {"values": {"registered_version": "2"},
                   "outcome": f"registered {NAME} version 2 ({reason[len('promoted: '):]}); champion moved "
                              "(re-decided: the champion changed from none to v1)"}
    assert runs == [context["run_id"]]  # the model is logged in the register step's own run
    assert store["client"].get_model_version(NAME, "2").tags[registry.DECISION_TAG] == reason
    plain = promotion.register_candidate(context_for(store), log_model, "mse", 0.5, decided_against="2",
                                         reason="x" * 6000)
    assert plain["outcome"] == f"registered {NAME} version 3 (mse 0.5000); champion moved"
    assert store["client"].get_model_version(NAME, "3").tags[registry.DECISION_TAG] == "x" * 5000


def constant_model(value: float):
    """log_model for a model that predicts value for every row (tells two versions' files apart)."""
    def log():
        import mlflow.pyfunc

        class Constant(mlflow.pyfunc.PythonModel):
            def predict(self, context, model_input, params=None):
                return [value] * len(model_input)

        return mlflow.pyfunc.log_model(name="model", python_model=Constant(), pip_requirements=[]).model_uri
    return log


def predicted(model_dir) -> float:
    import mlflow.pyfunc
    import pandas

    return float(mlflow.pyfunc.load_model(str(model_dir)).predict(pandas.DataFrame({"x": [0.0]}))[0])


@integration
def test_the_champion_rescored_is_the_version_named_not_the_latest(store):
    promotion.register_candidate(context_for(store), constant_model(1.0), "mse", 3.0, decided_against=None)
    promotion.register_candidate(context_for(store), constant_model(2.0), "mse", 2.0, decided_against="1")
    store["client"].set_registered_model_alias(NAME, registry.CHAMPION, "1")  # v2 is the latest, v1 the champion
    assert promotion.rescore_champion(scoring(store), "1", predicted) == 1.0
    result = promotion.evaluate_candidate(context_for(store), {"version": "1"}, "mse", 0.5, predicted)
    assert result["metrics"] == {"candidate_mse": 0.5, "champion_mse": 1.0}
    # registered without a decision in words: none is recorded
    promotion.register_candidate(context_for(store), log_model, "mse", 0.5, decided_against="1")
    assert store["client"].get_model_version(NAME, "3").tags.get(registry.DECISION_TAG, "") == ""


@integration
def test_a_rerun_of_the_only_registered_run_refuses_when_the_champion_was_removed(store):
    context = context_for(store)
    promotion.register_candidate(context, log_model, "mse", 3.0, decided_against=None)
    store["client"].delete_registered_model_alias(NAME, registry.CHAMPION)
    with pytest.raises(registry.RegistryError) as refused:  # its own complete version shows a champion existed
        promotion.register_candidate(context, log_model, "mse", 3.0, decided_against=None)
    assert str(refused.value) == registry.missing_champion_message(NAME, ["1"])
    assert versions(store) == ["1"] and champion(store) is None


@integration
def test_evaluate_takes_the_versions_missing_a_champion_from_the_alias_input(store):
    no_workspace = {"model_name": NAME}
    with pytest.raises(registry.RegistryError) as refused:
        promotion.evaluate_candidate(no_workspace, {"version": None, "existing": ["4", "2"]}, "mse", 1.0,
                                     rescore=lambda d: 1 / 0)
    assert str(refused.value) == registry.missing_champion_message(NAME, ["4", "2"])
    first = promotion.evaluate_candidate(no_workspace, {"version": None}, "mse", 1.0, rescore=lambda d: 1 / 0)
    assert first["values"]["promote"] is True
    # the runner's list is the answer: the registry is not asked again
    promotion.register_candidate(context_for(store), log_model, "mse", 3.0, decided_against=None)
    store["client"].delete_registered_model_alias(NAME, registry.CHAMPION)
    listed = promotion.evaluate_candidate(context_for(store), {"version": None, "existing": []}, "mse", 1.0,
                                          rescore=lambda d: 1 / 0)
    assert listed["values"]["promote"] is True


@integration
def test_a_re_decision_rescores_the_new_champion_with_the_projects_direction_and_margin(store):
    promotion.register_candidate(context_for(store), constant_model(1.0), "auc", 0.5, decided_against=None)
    promotion.register_candidate(context_for(store), constant_model(2.0), "auc", 0.5, decided_against="1")
    store["client"].set_registered_model_alias(NAME, registry.CHAMPION, "1")  # v1 again (v2 is the latest)
    # decided against v2, the champion is v1 now: re-scored on this split, v1 scores 1.0
    small = promotion.register_candidate(context_for(store), log_model, "auc", 1.2, decided_against="2",
                                         rescore=predicted, higher_is_better=True, min_improvement=0.4)
    assert small["values"]["registered_version"] == "" and champion(store) == "1"
    assert "improvement 0.2000 <= min_improvement 0.4" in small["outcome"]
    won = promotion.register_candidate(context_for(store), log_model, "auc", 1.5, decided_against="2",
                                       rescore=predicted, higher_is_better=True, min_improvement=0.4)
    assert won["values"]["registered_version"] == "3" and champion(store) == "3"
    assert "candidate auc 1.5000 vs champion v1 1.0000" in won["outcome"]


@integration
def test_a_killed_registration_that_wins_its_re_decision_says_both(store):
    promotion.register_candidate(context_for(store), log_model, "mse", 3.0, decided_against=None)
    context = context_for(store)
    version = killed_after_the_version(store, context, alias=False)
    promotion.register_candidate(context_for(store), log_model, "mse", 2.0, decided_against="1")
    won = promotion.register_candidate(context, log_model, "mse", 1.0, decided_against="1", rescore=lambda d: 2.0)
    assert won["values"]["registered_version"] == version and champion(store) == version
    assert won["outcome"].endswith("champion moved (re-decided: the champion changed from v1 to v3) "
                                   "(completed the registration interrupted in pipeline run earlier-run)")


def test_no_champion_promotes():
    assert decide("mse", 3000.0, None).promote


def test_strictly_better_promotes_and_names_both_numbers():
    decision = decide("mse", 2999.0, 3000.0, champion_version="4")
    assert decision.promote
    assert "candidate mse 2999.0000 vs champion v4 3000.0000 on the same test split" in decision.reason


@pytest.mark.parametrize("candidate", [3000.0, 3000.1, float("nan"), float("inf")])
def test_equal_worse_or_non_finite_is_not_promoted(candidate):
    decision = decide("mse", candidate, 3000.0)
    assert not decision.promote and decision.reason.startswith("not promoted")


def test_higher_is_better_metrics():
    assert decide("roc_auc", 0.9, 0.8, higher_is_better=True).promote
    assert not decide("roc_auc", 0.8, 0.9, higher_is_better=True).promote


def test_min_improvement_is_a_margin_the_candidate_must_exceed():
    assert not decide("roc_auc", 0.905, 0.9, higher_is_better=True, min_improvement=0.01).promote
    assert decide("roc_auc", 0.915, 0.9, higher_is_better=True, min_improvement=0.01).promote
    assert "min_improvement" in decide("mse", 99.5, 100.0, min_improvement=1.0).reason


def test_a_champion_that_cannot_score_the_data_is_beaten():
    assert decide("mse", 5.0, float("nan"), champion_version="2").promote


def test_direction_reads_either_key():
    assert direction({"higher_is_better": True}) and not direction({"higher_is_better": False})
    assert not direction({"lower_is_better": True}) and direction({"lower_is_better": False})
    assert not direction({})


# Both sides of every boundary of the rule, with exact binary fractions (no rounding decides a case).
@pytest.mark.parametrize("higher", [False, True], ids=["lower_is_better", "higher_is_better"])
def test_a_gain_equal_to_the_margin_is_not_enough_and_one_just_above_it_is(higher):
    sign = 1 if higher else -1
    assert not decide("m", 2.0 + sign * 0.25, 2.0, higher, "1", min_improvement=0.25).promote
    assert decide("m", 2.0 + sign * 0.375, 2.0, higher, "1", min_improvement=0.25).promote
    assert not decide("m", 2.0, 2.0, higher, "1").promote  # no margin: equal is not better
    assert decide("m", 2.0 + sign * 2 ** -40, 2.0, higher, "1").promote  # ... and a hair better is
    assert not decide("m", 2.0 - sign * 2 ** -40, 2.0, higher, "1").promote


FINITE = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)


@settings(max_examples=300, deadline=None)
@given(candidate=FINITE, champion=FINITE, higher=st.booleans(), margin=st.floats(min_value=0, max_value=1e3))
def test_a_finite_candidate_is_promoted_exactly_when_its_gain_exceeds_the_margin(candidate, champion, higher, margin):
    gain = candidate - champion if higher else champion - candidate
    decision = decide("m", candidate, champion, higher, "1", min_improvement=margin)
    assert decision.promote is (gain > margin)
    assert decision.reason.startswith("promoted: " if decision.promote else "not promoted: ")
    # the direction is a mirror: higher-is-better on x is lower-is-better on -x
    assert decide("m", -candidate, -champion, not higher, "1", min_improvement=margin).promote is decision.promote


@settings(max_examples=100, deadline=None)
@given(value=FINITE, bad=st.sampled_from([float("nan"), float("inf"), float("-inf")]), higher=st.booleans())
def test_a_non_finite_candidate_never_wins_and_a_champion_without_a_score_or_none_always_loses(value, bad, higher):
    assert not decide("m", bad, value, higher, "1").promote
    assert not decide("m", bad, None, higher).promote
    assert decide("m", value, bad, higher, "1").promote
    assert decide("m", value, None, higher, min_improvement=1e9).promote  # no champion: the margin is moot


def lock_files_held(state_dir) -> list[bool]:
    """For each registration lock file under state_dir: is it held (by anyone but this check)?"""
    import fcntl
    from pathlib import Path

    held = []
    for path in sorted((Path(state_dir) / "locks").glob("register-*.lock")):
        with open(path) as other:
            try:
                fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                held.append(True)
                continue
            fcntl.flock(other, fcntl.LOCK_UN)
            held.append(False)
    return held


@integration
def test_the_model_is_logged_and_champion_moved_only_while_the_registration_lock_is_held(store, monkeypatch):
    """Without the lock two retrains can both pass the compare-and-set and the worse one move `champion` last."""
    context = context_for(store)
    seen = []
    real = registry.complete_registration

    def moving_aliases(client, version, aliases=(registry.CHAMPION,)):
        seen.append(("alias", lock_files_held(context["state_dir"])))
        return real(client, version, aliases)

    def logging_model():
        seen.append(("log", lock_files_held(context["state_dir"])))
        return log_model()

    monkeypatch.setattr(registry, "complete_registration", moving_aliases)
    promotion.register_candidate(context, logging_model, "mse", 3.0, decided_against=None)
    assert seen == [("log", [True]), ("alias", [True])] and champion(store) == "1"
    assert lock_files_held(context["state_dir"]) == [False]  # released afterwards
    seen.clear()
    killed_after_the_version(store, second := context_for(store), alias=False)  # an interrupted registration
    promotion.register_candidate(second, logging_model, "mse", 2.0, decided_against="1")
    assert seen == [("alias", [True])] and champion(store) == "2"  # completed under the lock too
