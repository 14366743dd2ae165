"""Promotion and registration in-process against a real MLflow store (sqlite in a temp dir), so that the
mutation tester sees them: register only if strictly better on the same test split, the tags every version
carries, compare-and-set of `champion` against the champion the decision was made on."""
from __future__ import annotations

import math

import pytest

from ml_service.workspace import promotion, registry

pytestmark = [pytest.mark.integration, pytest.mark.filterwarnings("ignore:Add type hints:UserWarning")]
NAME = "promotion_test_model"


@pytest.fixture
def store(tmp_path, monkeypatch):
    import mlflow

    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
    experiment = client.create_experiment("promotion", artifact_location=(tmp_path / "artifacts").as_uri())
    return {"uri": uri, "client": client, "experiment": experiment, "tmp": tmp_path}


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


def test_a_champion_that_cannot_score_the_split_is_beaten_and_records_no_number(store):
    promotion.register_candidate(context_for(store), log_model, "mse", 3.0, decided_against=None)

    def broken(model_dir):
        raise ValueError("the data changed shape")

    result = promotion.evaluate_candidate(context_for(store), {"version": "1"}, "mse", 9.0, broken)
    assert result["values"]["promote"] is True and result["metrics"] == {"candidate_mse": 9.0}
    assert math.isnan(promotion.rescore_champion({"tracking_uri": store["uri"], "model_name": NAME}, "1", broken))


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
