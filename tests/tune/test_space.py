"""The search space of parameters.yml: every malformed entry is refused with the file and key named, before any
trial runs; both example projects declare one that parses, on a parameter their train step takes."""
from __future__ import annotations

import pytest
import yaml

from ml_service.config import load_settings
from ml_service.tune import SpaceError
from ml_service.tune.space import load_tuning, parse_tuning

EVALUATION = {"evaluation": {"metric": "mse", "higher_is_better": False}}


def tuning(space, **settings) -> dict:
    return {**EVALUATION, "tuning": {"search_space": space, **settings}}


@pytest.mark.parametrize("space, settings, located", [
    ({"alpha": {"type": "float", "low": 1, "high": 0.5}}, {}, "search_space.alpha: low (1) must be below high"),
    ({"alpha": {"type": "float", "low": 0, "high": 1, "log": True}}, {}, "search_space.alpha.low: must be above 0"),
    ({"alpha": {"type": "double", "low": 0, "high": 1}}, {}, "tuning.search_space.alpha.type: 'double' is not one of"),
    ({"alpha": {"type": "float", "low": "a", "high": 1}}, {}, "tuning.search_space.alpha.low: must be a number"),
    ({"alpha": {"type": "float", "high": 1}}, {}, "tuning.search_space.alpha.low: required"),
    ({"depth": {"type": "int", "low": 1.5, "high": 4}}, {}, "tuning.search_space.depth.low: must be a whole number"),
    ({"depth": {"type": "int", "low": 1, "high": 9, "step": 2, "log": True}}, {}, "step and log cannot be used"),
    ({"kernel": {"type": "categorical", "choices": []}}, {}, "search_space.kernel.choices: expected a non-empty"),
    ({"kernel": {"type": "categorical", "choices": ["a", "a"]}}, {}, "kernel.choices: a choice appears twice"),
    ({"kernel": {"type": "categorical", "choices": [[1]]}}, {}, "kernel.choices[0]: must be a number"),
    ({"alpha": {"type": "float", "low": 0, "high": 1, "scale": 2}}, {}, "search_space.alpha: unknown key(s) scale"),
    ({"alpha": [0, 1]}, {}, "tuning.search_space.alpha: expected a mapping with 'type'"),
    ({}, {}, "tuning.search_space: expected a non-empty mapping"),
    ({"alpha": {"type": "float", "low": 0, "high": 1}}, {"trials": 0}, "tuning.trials: expected a whole number"),
    ({"alpha": {"type": "float", "low": 0, "high": 1}}, {"pruner": "hyperband"}, "tuning.pruner: 'hyperband'"),
    ({"alpha": {"type": "float", "low": 0, "high": 1}}, {"sampler": "tpe"}, "tuning: unknown key(s) sampler"),
])
def test_a_malformed_search_space_is_refused_naming_the_file_and_key(space, settings, located):
    with pytest.raises(SpaceError) as refused:
        parse_tuning(tuning(space, **settings), "proj/parameters.yml")
    assert str(refused.value).startswith("proj/parameters.yml: ") and located in str(refused.value)


def test_no_tuning_section_or_no_metric_is_refused():
    with pytest.raises(SpaceError, match="no 'tuning:' section"):
        parse_tuning(EVALUATION, "p.yml")
    with pytest.raises(SpaceError, match="evaluation.metric: required"):
        parse_tuning({"tuning": {"search_space": {"a": {"type": "float", "low": 0, "high": 1}}}}, "p.yml")


def test_a_valid_space_gives_each_type_with_its_bounds_and_the_promotions_direction():
    parsed = parse_tuning({"evaluation": {"metric": "roc_auc", "higher_is_better": True}, "tuning": {
        "trials": 7, "search_space": {"C": {"type": "float", "low": 0.001, "high": 100, "log": True},
                                      "depth": {"type": "int", "low": 2, "high": 8, "step": 2},
                                      "kernel": {"type": "categorical", "choices": ["rbf", None]}}}}, "p.yml")
    assert parsed.direction == "maximize" and parsed.trials == 7 and parsed.metric == "roc_auc"
    assert [(p.name, p.type, p.low, p.high, p.log, p.step, p.choices) for p in parsed.params] == [
        ("C", "float", 0.001, 100.0, True, None, ()), ("depth", "int", 2, 8, False, 2, ()),
        ("kernel", "categorical", None, None, False, None, ("rbf", None))]


def test_both_example_projects_declare_a_space_on_params_their_train_step_takes():
    settings = load_settings()
    assert len(settings.models) >= 2
    for project in settings.models:
        parsed = load_tuning(project.parameters_file)
        pipeline = yaml.safe_load(project.pipeline_file.read_text())
        step = pipeline["steps"][parsed.step]
        searched = {p.name for p in parsed.params}
        assert searched <= set(step.get("params") or {}), (project.project, searched)
        defaults = pipeline.get("params") or {}
        assert all(defaults.get(name, "unset") is None for name in searched), "a searched param must default to null"


def test_a_step_as_wide_as_low_to_high_is_taken_and_one_wider_is_refused():
    """Both sides of `step > high - low`: a step equal to the width leaves the two ends to choose from."""
    parsed = parse_tuning(tuning({"depth": {"type": "int", "low": 2, "high": 8, "step": 6}}), "p.yml")
    assert [(p.low, p.high, p.step) for p in parsed.params] == [(2, 8, 6)]
    with pytest.raises(SpaceError, match=r"p.yml: tuning.search_space.depth.step: 7 is wider than low..high"):
        parse_tuning(tuning({"depth": {"type": "int", "low": 2, "high": 8, "step": 7}}), "p.yml")
