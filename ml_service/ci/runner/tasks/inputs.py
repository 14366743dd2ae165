"""Task inputs as the agent reads them: names without case, task.json aliases, defaults for what is left out."""
from __future__ import annotations

from dataclasses import dataclass

from ml_service.errors import MLOpsError


class TaskError(MLOpsError):
    """A task failed or is not supported locally."""


@dataclass(frozen=True)
class Input:
    """One input of a task.json: its default (None: required when `required`) and its aliases."""

    default: str | None = ""
    aliases: tuple[str, ...] = ()
    required: bool = False
    choices: tuple[str, ...] = ()  # a pickList's allowed values (any case); empty: any text


def read(task: str, declared: dict[str, Input], given: dict) -> dict[str, str]:
    """name -> value for every declared input: given (by name or alias, any case), else the default."""
    lowered = {str(k).lower(): v for k, v in (given or {}).items()}
    values = {}
    for name, spec in declared.items():
        value = None
        for key in (name, *spec.aliases):
            if key.lower() in lowered:
                value = lowered[key.lower()]
                break
        if value is None or value == "":
            if spec.required:
                raise TaskError(f"{task}: input '{name}' is required")
            value = spec.default or ""
        values[name] = str(value)
    return values


def flag(value: str) -> bool:
    """A boolean input (task.json boolean: true / false text)."""
    return str(value).strip().lower() in ("true", "yes", "on", "1")


def lines(value: str) -> list[str]:
    """A multi-line input: its non-empty lines, stripped."""
    return [line.strip() for line in str(value).splitlines() if line.strip()]


def _unexpanded(value) -> bool:
    """Does a value still hold a macro or expression, known only when the step runs?"""
    return any(mark in str(value) for mark in ("$(", "$[", "${{"))


def check(task: str, declared: dict[str, Input], given: dict, supported: dict[str, tuple[str, ...]] | None = None
          ) -> list[str]:
    """What is wrong with a task's inputs as written: an input the task does not declare (by name or alias, any
    case), a value outside a pickList, or (supported: input -> the values the local engine gives a meaning) a value
    this engine cannot honour. Values holding a macro are checked when the step runs."""
    known = {key.lower(): name for name, spec in declared.items() for key in (name, *spec.aliases)}
    problems = []
    for key, value in (given or {}).items():
        name = known.get(str(key).lower())
        if name is None:
            problems.append(f"{task} has no input '{key}' (its inputs: {', '.join(declared)})")
            continue
        spec, text = declared[name], str(value).strip()
        if _unexpanded(text) or text == "":
            continue
        if spec.choices and text.lower() not in {c.lower() for c in spec.choices}:
            problems.append(f"{task}: input {key}: '{text}' is not one of {', '.join(spec.choices)}")
        elif supported and name in supported and text.lower() not in {c.lower() for c in supported[name]}:
            problems.append(f"{task}: input {key}: '{text}' has no local meaning (supported here: "
                            f"{', '.join(supported[name])})")
    return problems
