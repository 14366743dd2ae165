import pytest

from ml_service.pipelines.definition import PipelineError, load_pipeline, parse_param, parse_pipeline
from tests.conftest import ROOT

VALID = """
name: p
params: {data: d.csv, alpha: null}
steps:
  b:
    function: m:b
    inputs: {a: {step: a}}
  a:
    function: m:a
    inputs: {data: {path: $data}}
    params: {alpha: $alpha}
  c:
    function: m:c
    when: b.promote
"""


def test_steps_are_ordered_by_their_dependencies():
    pipeline = parse_pipeline(VALID)
    assert [s.name for s in pipeline.steps] == ["a", "b", "c"]
    assert pipeline.steps[2].upstream == ["b"]


def test_params_resolve_and_overrides_are_checked():
    pipeline = parse_pipeline(VALID).with_params({"alpha": 3})
    assert pipeline.resolve("$alpha") == 3
    with pytest.raises(PipelineError, match="no parameter beta"):
        pipeline.with_params({"beta": 1})


@pytest.mark.parametrize("text, message", [
    ("name: p\nsteps: {a: {function: m:a, inputs: {x: {step: nope}}}}", "unknown step 'nope'"),
    ("name: p\nsteps: {a: {function: m:a, after: b}, b: {function: m:b, after: a}}", "dependency cycle"),
    ("name: p\nsteps: {a: {function: m:a, params: {k: $missing}}}", "unknown parameter '\\$missing'"),
    ("name: p\nsteps: {a: {function: no_colon}}", "package.module:function"),
    ("name: p\nsteps: {a: {function: m:a, colour: red}}", "unknown key"),
    ("name: p\nsteps: {a: {function: m:a, inputs: {x: {path: a, step: b}}}}", "exactly one of"),
    ("name: p\nsteps: [unclosed", "malformed YAML"),
    ("steps: {a: {function: m:a}}", "'name' is required"),
    ("name: p\nsteps: {}", "non-empty mapping"),
])
def test_malformed_definitions_say_what_and_where(text, message):
    with pytest.raises(PipelineError, match=message):
        parse_pipeline(text, "file.yml")


def test_param_values_are_yaml_scalars():
    assert parse_param("alpha=1000") == ("alpha", 1000)
    assert parse_param("data=x.csv") == ("data", "x.csv")
    with pytest.raises(PipelineError):
        parse_param("alpha")


def test_the_repository_pipeline_is_valid():
    pipeline = load_pipeline(ROOT / "diabetes_regression" / "pipeline.yml")
    assert [s.name for s in pipeline.steps] == ["validate", "train", "evaluate", "register"]
    register = pipeline.steps[-1]
    assert register.when == "evaluate.promote" and register.reuse is False
