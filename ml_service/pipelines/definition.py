"""An ML pipeline defined as data (YAML): steps, their inputs, parameters and ordering.

    name: my-pipeline
    params: {alpha: null}                    # plus the built-ins $data, $contract, $target, $dataset
    requirements: [pyproject.toml]          # hashed into every step's reuse key
    steps:
      train:
        function: package.module:function   # run in its own process
        inputs:
          data: {path: $data, dataset: $dataset}   # a file; logged as an MLflow dataset
          previous: {step: validate}               # another step's outputs
          champion: {alias: champion}              # the registry version holding an alias
        params: {alpha: $alpha}
        code: [package/training]                   # extra files whose change forces a rerun
        imports: [sklearn]                         # heavy modules to preload (see zygote.py)
        after: [validate]                          # ordering without passing data
        when: evaluate.promote                     # run only if a value of a step is true
        reuse: true                                # false: always run (e.g. it writes the registry)
        compute: local                             # or docker: in the training image
        timeout_minutes: 30
      tune:
        tune: train                                # a tune step: an Optuna study over train's params (the
        params: {trials: 20, workers: 1}           # project's tuning.search_space); train then runs after it
                                                   # with the best values for the params it leaves unset (null)
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ml_service.errors import UsageError

INPUT_KINDS = ("path", "step", "alias")
COMPUTE_TARGETS = ("local", "docker")
# Parameters every pipeline has, filled from the model's entry in mlops.yml (a params: entry overrides).
BUILTIN_PARAMS = ("data", "contract", "target", "dataset")
STEP_KEYS = {"function", "inputs", "params", "code", "imports", "after", "when", "reuse", "compute",
             "timeout_minutes", "tune"}
TUNE_FUNCTION = "ml_service.tune.step:run"  # what a `tune: STEP` step runs


class PipelineError(UsageError):
    """The pipeline definition is malformed; the message says where."""


@dataclass(frozen=True)
class Input:
    """One named input of a step."""

    kind: str  # path | step | alias
    value: str
    dataset: str = ""
    targets: str = ""


@dataclass(frozen=True)
class Step:
    """One step: a function run in its own process, with declared inputs."""

    name: str
    function: str
    inputs: dict[str, Input] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    code: tuple[str, ...] = ()
    imports: tuple[str, ...] = ()
    after: tuple[str, ...] = ()
    when: str = ""
    reuse: bool = True
    compute: str = "local"
    timeout_minutes: float = 60.0
    tune: str = ""  # the step whose params this step tunes (a tune step)

    @property
    def upstream(self) -> list[str]:
        """Steps that must finish before this one."""
        names = [i.value for i in self.inputs.values() if i.kind == "step"] + list(self.after)
        if self.when:
            names.append(self.when.split(".", 1)[0])
        return list(dict.fromkeys(names))


@dataclass(frozen=True)
class Pipeline:
    """A named pipeline: parameters with defaults and steps in a valid order."""

    name: str
    steps: list[Step]
    params: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    requirements: tuple[str, ...] = ()
    source: str = ""

    @property
    def preload(self) -> list[str]:
        """Every module a step declares under imports:, in order, once."""
        return list(dict.fromkeys(m for step in self.steps for m in step.imports))

    def with_builtins(self, values: dict[str, Any]) -> "Pipeline":
        """A copy with the built-in parameters filled (values the file's own params: do not override)."""
        filled = {k: v for k, v in values.items() if k in BUILTIN_PARAMS and k not in self.params}
        return Pipeline(self.name, self.steps, {**filled, **self.params}, self.description, self.requirements,
                        self.source)

    def with_params(self, overrides: dict[str, Any]) -> "Pipeline":
        """A copy with parameter overrides; unknown names are refused."""
        unknown = sorted(set(overrides) - set(self.params) - set(BUILTIN_PARAMS))
        if unknown:
            known = ", ".join(sorted(self.params)) or "none"
            raise PipelineError(f"pipeline '{self.name}' has no parameter {', '.join(unknown)} (known: {known})")
        return Pipeline(self.name, self.steps, {**self.params, **overrides}, self.description,
                        self.requirements, self.source)

    def resolve(self, value: Any) -> Any:
        """Replace a '$param' string by the parameter's value."""
        if isinstance(value, str) and value.startswith("$"):
            if value[1:] not in self.params:
                raise PipelineError(f"pipeline '{self.name}': parameter '{value}' has no value (built-in parameters "
                                    "come from the model's entry in mlops.yml)")
            return self.params[value[1:]]
        return value


def parse_param(text: str) -> tuple[str, Any]:
    """Parse 'k=v' from the command line; v is read as a YAML scalar (1000 -> int)."""
    if "=" not in text:
        raise PipelineError(f"--param expects NAME=VALUE, got '{text}'")
    key, raw = text.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw else ""
    except yaml.YAMLError:
        value = raw
    return key.strip(), value


def load_pipeline(path: Path) -> Pipeline:
    """Read and validate a pipeline file."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise PipelineError(f"{path}: pipeline file not found") from None
    return parse_pipeline(text, str(path))


def parse_pipeline(text: str, where: str = "<pipeline>") -> Pipeline:
    """Validate YAML text into a Pipeline, naming the file and key of every problem."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise PipelineError(f"{where}: malformed YAML: {exc}") from None
    if not isinstance(data, dict):
        raise PipelineError(f"{where}: expected a mapping with 'name' and 'steps'")
    name = data.get("name")
    if not name or not isinstance(name, str):
        raise PipelineError(f"{where}: 'name' is required and must be a string")
    params = data.get("params") or {}
    if not isinstance(params, dict):
        raise PipelineError(f"{where}: 'params' must be a mapping")
    raw_steps = data.get("steps")
    if not isinstance(raw_steps, dict) or not raw_steps:
        raise PipelineError(f"{where}: 'steps' must be a non-empty mapping of step name to step")
    requirements = data.get("requirements") or []
    if isinstance(requirements, str):
        requirements = [requirements]

    steps = [_parse_step(step_name, body, params, f"{where}: steps.{step_name}")
             for step_name, body in raw_steps.items()]
    ordered = _order(_wire_tuning(steps, where), where)
    return Pipeline(name=name, steps=ordered, params=dict(params), description=str(data.get("description", "")),
                    requirements=tuple(requirements), source=text)


def _parse_step(name: str, body: Any, params: dict, where: str) -> Step:
    if not isinstance(body, dict):
        raise PipelineError(f"{where}: a step must be a mapping")
    unknown = sorted(set(body) - STEP_KEYS)
    if unknown:
        raise PipelineError(f"{where}: unknown key(s) {', '.join(unknown)} (allowed: {', '.join(sorted(STEP_KEYS))})")
    tune = body.get("tune") or ""
    if not isinstance(tune, str):
        raise PipelineError(f"{where}.tune: expected the name of the step to tune")
    function = body.get("function", TUNE_FUNCTION if tune else None)
    if not isinstance(function, str) or ":" not in function:
        raise PipelineError(f"{where}.function: expected 'package.module:function'")
    inputs = {}
    for input_name, spec in (body.get("inputs") or {}).items():
        inputs[input_name] = _parse_input(spec, params, f"{where}.inputs.{input_name}")
    step_params = body.get("params") or {}
    if not isinstance(step_params, dict):
        raise PipelineError(f"{where}.params: must be a mapping")
    for key, value in step_params.items():
        _check_ref(value, params, f"{where}.params.{key}")
    when = str(body.get("when") or "")
    if when and "." not in when:
        raise PipelineError(f"{where}.when: expected 'step.value', got '{when}'")
    compute = str(body.get("compute", "local"))
    if compute not in COMPUTE_TARGETS:
        raise PipelineError(f"{where}.compute: unknown target '{compute}' (available: {', '.join(COMPUTE_TARGETS)})")
    try:
        timeout = float(body.get("timeout_minutes", 60))
    except (TypeError, ValueError):
        raise PipelineError(f"{where}.timeout_minutes: must be a number") from None
    return Step(
        name=name, function=function, inputs=inputs, params=dict(step_params),
        code=tuple(_as_list(body.get("code"), f"{where}.code")),
        imports=tuple(_as_list(body.get("imports"), f"{where}.imports")),
        after=tuple(_as_list(body.get("after"), f"{where}.after")),
        when=when, reuse=_as_bool(body.get("reuse", True), f"{where}.reuse"),
        compute=compute, timeout_minutes=timeout, tune=tune,
    )


def _wire_tuning(steps: list[Step], where: str) -> list[Step]:
    """A tune step takes the files its target takes (and its code and imports); the target runs after it."""
    import dataclasses

    by_name = {s.name: s for s in steps}
    tuners: dict[str, str] = {}
    for step in steps:
        if not step.tune:
            continue
        target = by_name.get(step.tune)
        if target is None:
            raise PipelineError(f"{where}: steps.{step.name}.tune: unknown step '{step.tune}'")
        if target.name == step.name or target.tune:
            raise PipelineError(f"{where}: steps.{step.name}.tune: '{step.tune}' is not a step that trains")
        if step.tune in tuners:
            raise PipelineError(f"{where}: steps.{step.name}.tune: '{step.tune}' is tuned by {tuners[step.tune]} "
                                "already")
        tuners[step.tune] = step.name
        by_name[step.name] = dataclasses.replace(
            step, inputs={**{k: v for k, v in target.inputs.items() if v.kind == "path"}, **step.inputs},
            code=tuple(dict.fromkeys(target.code + step.code)),
            imports=tuple(dict.fromkeys(target.imports + step.imports)))
    for target_name, tuner in tuners.items():
        target = by_name[target_name]
        by_name[target_name] = dataclasses.replace(target, after=tuple(dict.fromkeys(target.after + (tuner,))))
    return [by_name[s.name] for s in steps]


def _parse_input(spec: Any, params: dict, where: str) -> Input:
    if not isinstance(spec, dict):
        raise PipelineError(f"{where}: expected a mapping with one of {', '.join(INPUT_KINDS)}")
    kinds = [k for k in INPUT_KINDS if k in spec]
    if len(kinds) != 1:
        raise PipelineError(f"{where}: needs exactly one of {', '.join(INPUT_KINDS)}")
    value = spec[kinds[0]]
    _check_ref(value, params, where)
    for key in ("dataset", "targets"):
        _check_ref(spec.get(key), params, f"{where}.{key}")
    return Input(kind=kinds[0], value=str(value), dataset=str(spec.get("dataset", "")),
                 targets=str(spec.get("targets", "")))


def _check_ref(value: Any, params: dict, where: str) -> None:
    if isinstance(value, str) and value.startswith("$") and value[1:] not in params \
            and value[1:] not in BUILTIN_PARAMS:
        raise PipelineError(f"{where}: refers to unknown parameter '{value}'")


def _as_list(value: Any, where: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    raise PipelineError(f"{where}: expected a string or a list of strings")


def _as_bool(value: Any, where: str) -> bool:
    if isinstance(value, bool):
        return value
    if str(value).lower() in ("true", "false"):
        return str(value).lower() == "true"
    raise PipelineError(f"{where}: expected true or false")


def _order(steps: list[Step], where: str) -> list[Step]:
    """Topological order, stable with respect to the file's order; refuses unknown steps and cycles."""
    by_name = {s.name: s for s in steps}
    for step in steps:
        for dep in step.upstream:
            if dep not in by_name:
                raise PipelineError(f"{where}: steps.{step.name} depends on unknown step '{dep}'")
            if dep == step.name:
                raise PipelineError(f"{where}: steps.{step.name} depends on itself")
    ordered: list[Step] = []
    done: set[str] = set()
    while len(ordered) < len(steps):
        ready = [s for s in steps if s.name not in done and all(d in done for d in s.upstream)]
        if not ready:
            stuck = ", ".join(s.name for s in steps if s.name not in done)
            raise PipelineError(f"{where}: dependency cycle among steps {stuck}")
        ordered.append(ready[0])
        done.add(ready[0].name)
    return ordered
