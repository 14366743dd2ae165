"""The `tune` step kind of pipeline.yml: it takes its target's files, the target runs after it, and the target's
unset params get the tune step's best values (an explicit value still wins); malformed ones are located."""
from __future__ import annotations

import pytest

from ml_service.pipelines.definition import TUNE_FUNCTION, PipelineError, parse_pipeline
from ml_service.pipelines.runner import StepRecord, tuned_params

PIPELINE = """
name: p
params: {alpha: null, other: 2}
steps:
  validate:
    function: pkg.validate:run
    inputs: {data: {path: data.csv}}
  train:
    function: pkg.train:run
    after: [validate]
    inputs: {data: {path: data.csv}, parameters: {path: params.yml}}
    params: {alpha: $alpha, other: $other}
    code: [pkg/training]
    imports: [sklearn]
  tune:
    tune: train
    after: [validate]
    params: {trials: 5}
"""


def test_a_tune_step_takes_its_targets_files_and_the_target_runs_after_it():
    pipeline = parse_pipeline(PIPELINE)
    assert [s.name for s in pipeline.steps] == ["validate", "tune", "train"]
    tune = pipeline.steps[1]
    assert tune.function == TUNE_FUNCTION and tune.tune == "train"
    assert sorted(tune.inputs) == ["data", "parameters"] and tune.code == ("pkg/training",)
    assert tune.imports == ("sklearn",) and "tune" in pipeline.steps[2].upstream


def test_the_tuned_step_gets_the_best_values_only_for_params_left_unset():
    pipeline = parse_pipeline(PIPELINE)
    tune, train = pipeline.steps[1], pipeline.steps[2]
    told = tuned_params(pipeline, tune, {"trials": 5}, [])
    assert told["target"] == {"step": "train", "function": "pkg.train:run", "params": {"alpha": None, "other": 2}}
    record = StepRecord("tune", status="done", values={"best_params": {"alpha": 0.25, "other": 9}})
    assert tuned_params(pipeline, train, {"alpha": None, "other": 2}, [record]) == {"alpha": 0.25, "other": 2}
    assert tuned_params(pipeline, train, {"alpha": 1.5, "other": 2}, [record])["alpha"] == 1.5  # --param wins
    failed = StepRecord("tune", status="failed", values={"best_params": {"alpha": 0.25}})
    assert tuned_params(pipeline, train, {"alpha": None}, [failed]) == {"alpha": None}


@pytest.mark.parametrize("change, located", [
    (("tune: train", "tune: nowhere"), "steps.tune.tune: unknown step 'nowhere'"),
    (("tune: train", "tune: tune"), "steps.tune.tune: 'tune' is not a step that trains"),
    (("tune: train", "tune: [train]"), "steps.tune.tune: expected the name of the step to tune"),
])
def test_a_malformed_tune_step_is_located(change, located):
    with pytest.raises(PipelineError) as refused:
        parse_pipeline(PIPELINE.replace(*change), "pipe.yml")
    assert located in str(refused.value)


def test_a_step_tuned_twice_is_refused():
    twice = PIPELINE + "  tune2:\n    tune: train\n"
    with pytest.raises(PipelineError, match="'train' is tuned by tune already"):
        parse_pipeline(twice, "pipe.yml")
