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
