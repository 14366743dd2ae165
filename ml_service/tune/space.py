"""The tuning settings of a model project, from the `tuning:` section of its parameters.yml, checked before any
trial runs (every error names the file and the key):

    tuning:
      step: train                 # the pipeline step whose params are searched (default: train)
      trials: 20                  # trials of the study in all (COMPLETE or PRUNED), across workers and reruns
      heartbeat_seconds: 10       # a worker's trial with no heartbeat for 2x this long is marked FAIL
      pruner: median              # median (stop trials whose intermediate values fall behind) or none
      search_space:
        alpha: {type: float, low: 0.001, high: 10.0, log: true}
        max_depth: {type: int, low: 2, high: 12, step: 2}
        kernel: {type: categorical, choices: [linear, rbf]}

The metric and its direction are the promotion's (`evaluation.metric`, `evaluation.higher_is_better`).
"""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ml_service.tune import SpaceError

TYPES = {"float": {"low", "high", "log", "step"}, "int": {"low", "high", "log", "step"}, "categorical": {"choices"}}
SETTINGS = {"step", "trials", "heartbeat_seconds", "pruner", "search_space", "seed"}
PRUNERS = ("median", "none")


@dataclass(frozen=True)
class Param:
    """One searched parameter."""

    name: str
    type: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: tuple = ()

    def suggest(self, trial):
        """The trial's value of this parameter (Optuna's suggest_*)."""
        if self.type == "categorical":
            return trial.suggest_categorical(self.name, list(self.choices))
        if self.type == "int":
            return trial.suggest_int(self.name, int(self.low), int(self.high), step=int(self.step or 1), log=self.log)
        return trial.suggest_float(self.name, self.low, self.high, step=self.step, log=self.log)


@dataclass(frozen=True)
class Tuning:
    """A project's tuning settings."""

    params: tuple[Param, ...]
    metric: str
    higher_is_better: bool
    step: str = "train"
    trials: int = 20
    heartbeat_seconds: float = 10.0
    pruner: str = "median"
    seed: int | None = None
    source: str = ""
    raw: dict = field(default_factory=dict)

    @property
    def direction(self) -> str:
        """Optuna's direction of the metric."""
        return "maximize" if self.higher_is_better else "minimize"

    @property
    def digest(self) -> str:
        """A short digest of what defines the study: the space, the metric and its direction."""
        material = json.dumps({"space": self.raw, "metric": self.metric, "max": self.higher_is_better},
                              sort_keys=True, default=str)
        return hashlib.sha256(material.encode()).hexdigest()[:10]

    def suggest(self, trial) -> dict:
        """Every parameter's value for a trial."""
        return {param.name: param.suggest(trial) for param in self.params}


def _number(value, where: str, integer: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise SpaceError(f"{where}: must be a {'whole ' if integer else ''}number, got {value!r}")
    if integer and value != int(value):
        raise SpaceError(f"{where}: must be a whole number for type int, got {value!r}")
    return value


def parse_param(name: str, body, where: str) -> Param:
    """One entry of search_space, checked."""
    if not isinstance(body, dict) or "type" not in body:
        raise SpaceError(f"{where}: expected a mapping with 'type' ({', '.join(TYPES)})")
    kind = body["type"]
    if kind not in TYPES:
        raise SpaceError(f"{where}.type: {kind!r} is not one of {', '.join(TYPES)}")
    unknown = sorted(set(body) - TYPES[kind] - {"type"})
    if unknown:
        raise SpaceError(f"{where}: unknown key(s) {', '.join(unknown)} for type {kind} "
                         f"(allowed: {', '.join(sorted(TYPES[kind]))})")
    if kind == "categorical":
        choices = body.get("choices")
        if not isinstance(choices, list) or not choices:
            raise SpaceError(f"{where}.choices: expected a non-empty list")
        for i, choice in enumerate(choices):
            if choice is not None and not isinstance(choice, (bool, int, float, str)):
                raise SpaceError(f"{where}.choices[{i}]: must be a number, text, true/false or null, got {choice!r}")
        if len({json.dumps(c) for c in choices}) != len(choices):
            raise SpaceError(f"{where}.choices: a choice appears twice")
        return Param(name, kind, choices=tuple(choices))
    integer = kind == "int"
    for key in ("low", "high"):
        if key not in body:
            raise SpaceError(f"{where}.{key}: required for type {kind}")
    low, high = _number(body["low"], f"{where}.low", integer), _number(body["high"], f"{where}.high", integer)
    if low >= high:
        raise SpaceError(f"{where}: low ({low}) must be below high ({high})")
    log = body.get("log", False)
    if not isinstance(log, bool):
        raise SpaceError(f"{where}.log: expected true or false")
    step = body.get("step")
    if step is not None:
        step = _number(step, f"{where}.step", integer)
        if step <= 0:
            raise SpaceError(f"{where}.step: must be above 0")
        if log:
            raise SpaceError(f"{where}: step and log cannot be used together")
        if step > high - low:
            raise SpaceError(f"{where}.step: {step} is wider than low..high")
    if log and low <= 0:
        raise SpaceError(f"{where}.low: must be above 0 with log: true")
    return Param(name, kind, float(low) if not integer else int(low), float(high) if not integer else int(high),
                 log, step)


def parse_tuning(data: dict, where: str) -> Tuning:
    """The tuning settings from a parsed parameters.yml (where: its path, for errors)."""
    section = data.get("tuning")
    if section is None:
        raise SpaceError(f"{where}: no 'tuning:' section; declare a search space under tuning.search_space "
                         "(see docs/scale-out.md)")
    if not isinstance(section, dict):
        raise SpaceError(f"{where}: tuning: expected a mapping")
    unknown = sorted(set(section) - SETTINGS)
    if unknown:
        raise SpaceError(f"{where}: tuning: unknown key(s) {', '.join(unknown)} "
                         f"(allowed: {', '.join(sorted(SETTINGS))})")
    space = section.get("search_space")
    if not isinstance(space, dict) or not space:
        raise SpaceError(f"{where}: tuning.search_space: expected a non-empty mapping of parameter name to range")
    params = tuple(parse_param(str(name), body, f"{where}: tuning.search_space.{name}") for name, body in space.items())
    evaluation = data.get("evaluation") or {}
    metric = evaluation.get("metric") if isinstance(evaluation, dict) else None
    if not isinstance(metric, str) or not metric:
        raise SpaceError(f"{where}: evaluation.metric: required (the metric the trials are measured on)")
    higher = evaluation.get("higher_is_better", False)
    if not isinstance(higher, bool):
        raise SpaceError(f"{where}: evaluation.higher_is_better: expected true or false")
    trials = section.get("trials", 20)
    if isinstance(trials, bool) or not isinstance(trials, int) or trials < 1:
        raise SpaceError(f"{where}: tuning.trials: expected a whole number of at least 1, got {trials!r}")
    heartbeat = section.get("heartbeat_seconds", 10)
    if isinstance(heartbeat, bool) or not isinstance(heartbeat, (int, float)) or heartbeat < 1:
        raise SpaceError(f"{where}: tuning.heartbeat_seconds: expected a number of at least 1, got {heartbeat!r}")
    pruner = section.get("pruner", "median")
    if pruner not in PRUNERS:
        raise SpaceError(f"{where}: tuning.pruner: {pruner!r} is not one of {', '.join(PRUNERS)}")
    seed = section.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise SpaceError(f"{where}: tuning.seed: expected a whole number")
    step = section.get("step", "train")
    if not isinstance(step, str) or not step:
        raise SpaceError(f"{where}: tuning.step: expected a step name")
    return Tuning(params, metric, higher, step, trials, float(heartbeat), pruner, seed, where, dict(space))


def load_tuning(path: Path) -> Tuning:
    """The tuning settings of a parameters.yml file."""
    try:
        data = yaml.safe_load(Path(path).read_text()) or {}
    except FileNotFoundError:
        raise SpaceError(f"{path}: parameters file not found") from None
    except yaml.YAMLError as exc:
        raise SpaceError(f"{path}: malformed YAML: {exc}") from None
    if not isinstance(data, dict):
        raise SpaceError(f"{path}: expected a mapping")
    return parse_tuning(data, str(path))
