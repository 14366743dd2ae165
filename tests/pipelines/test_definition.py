import pytest


from ml_service.pipelines.definition import PipelineError, load_pipeline, parse_param, parse_pipeline
from ml_service.config import load_settings
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


@pytest.mark.parametrize("model", load_settings({"MLOPS_ROOT": str(ROOT)}).models, ids=lambda m: m.project)
def test_every_project_pipeline_is_valid(model):
    pipeline = load_pipeline(model.pipeline_file)
    assert [s.name for s in pipeline.steps] == ["validate", "train", "evaluate", "register"]
    register = pipeline.steps[-1]
    assert register.when == "evaluate.promote" and register.reuse is False


def test_builtin_parameters_are_filled_from_the_model_and_overridable():
    text = "name: p\nparams: {data: own.csv}\nsteps: {s: {function: 'm:f', inputs: {d: {path: $data}, " \
           "c: {path: $contract, dataset: $dataset}}}}"
    pipeline = parse_pipeline(text).with_builtins({"data": "x.csv", "contract": "c.json", "dataset": "d"})
    assert pipeline.params == {"data": "own.csv", "contract": "c.json", "dataset": "d"}
    assert pipeline.with_params({"contract": "other.json"}).params["contract"] == "other.json"
    with pytest.raises(PipelineError, match="has no parameter nope"):
        pipeline.with_params({"nope": 1})
    with pytest.raises(PipelineError, match=r"parameter '\$target' has no value"):
        parse_pipeline(text).resolve("$target")


def test_independent_steps_keep_the_files_order_and_dependencies_come_first():
    pipeline = parse_pipeline("name: p\nsteps:\n  z: {function: m:z}\n  y: {function: m:y, after: [x]}\n"
                              "  x: {function: m:x}\n  w: {function: m:w}\n")
    assert [s.name for s in pipeline.steps] == ["z", "x", "y", "w"]


def test_step_defaults_and_how_reuse_and_timeout_are_read():
    step = parse_pipeline("name: p\nsteps: {a: {function: m:a}}").steps[0]
    assert (step.reuse, step.compute, step.timeout_minutes, step.when, step.code) == (True, "local", 60.0, "", ())
    for text, expected in (("false", False), ("'false'", False), ("'True'", True), ("true", True)):
        assert parse_pipeline(f"name: p\nsteps: {{a: {{function: m:a, reuse: {text}}}}}").steps[0].reuse is expected
    assert parse_pipeline("name: p\nsteps: {a: {function: m:a, timeout_minutes: '0.5'}}").steps[0].timeout_minutes \
        == 0.5


@pytest.mark.parametrize("body, message", [
    ("reuse: maybe", r"file.yml: steps.a.reuse: expected true or false"),
    ("timeout_minutes: soon", r"file.yml: steps.a.timeout_minutes: must be a number"),
    ("when: promote", r"file.yml: steps.a.when: expected 'step.value', got 'promote'"),
    ("compute: gpu", r"file.yml: steps.a.compute: unknown target 'gpu' \(available: local, docker\)"),
    ("after: [a]", r"file.yml: steps.a depends on itself"),
    ("code: [1, 2]", r"file.yml: steps.a.code: expected a string or a list of strings"),
])
def test_a_bad_step_key_is_refused_naming_file_step_and_key(body, message):
    with pytest.raises(PipelineError, match=f"^{message}"):
        parse_pipeline(f"name: p\nsteps: {{a: {{function: m:a, {body}}}}}", "file.yml")
