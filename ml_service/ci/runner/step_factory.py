"""Each step of a job as a typed object, made in one place (nektos/act's `step_factory.go`).

`new_step` turns a compiled step mapping into a ScriptStep (script, bash), TaskStep, CheckoutStep, DownloadStep,
PublishStep or ShellStep (pwsh, powershell: no PowerShell on this agent); anything else is an EngineError naming
where. The step keeps its compiled mapping (`raw`): the run's plan names a step by that mapping (preflight.py), and
a value is read from it when the step runs, so a bad value fails the step at the same point as before.
"""
from __future__ import annotations

from dataclasses import dataclass

from ml_service.ci.model import expressions as ex
from ml_service.ci.model.pipeline import STEP_KINDS, EngineError


@dataclass(frozen=True)
class Step:
    """What every step has: its mapping, its kind (the key that made it), its path in the run, and the keys
    every kind shares (name, displayName, enabled, condition, retryCountOnTaskFailure, continueOnError)."""

    raw: dict
    kind: str
    path: str

    @property
    def name(self) -> str:
        """The step's `name:` (its outputs are <name>.<variable>); empty when it has none."""
        return str(self.raw.get("name") or "")

    @property
    def display_name(self) -> str:
        """`displayName:` as written (macros not yet expanded), else the agent's default for the kind."""
        return str(self.raw.get("displayName") or self.default_display())

    def default_display(self) -> str:
        """What the agent shows for a step without a displayName."""
        return f"{self.kind.capitalize()}: {self.raw[self.kind]}"

    @property
    def enabled(self) -> bool:
        """`enabled:` (default true)."""
        return ex.as_bool(self.raw.get("enabled", True))

    @property
    def condition(self) -> str:
        """`condition:` (default succeeded())."""
        return str(self.raw.get("condition") or "succeeded()")

    @property
    def attempts(self) -> int:
        """1 + `retryCountOnTaskFailure`."""
        return 1 + int(self.raw.get("retryCountOnTaskFailure") or 0)

    @property
    def continue_on_error(self) -> bool:
        """`continueOnError:` (default false)."""
        return ex.as_bool(self.raw.get("continueOnError", False))


def _first_line(kind: str, script: str) -> str:
    """The agent's display of a script step without a displayName: `Bash: <first line>` (60 characters)."""
    first = script.strip().splitlines()
    return f"{kind.capitalize()}: {first[0][:60] if first else ''}"


@dataclass(frozen=True)
class ScriptStep(Step):
    """`script:` or `bash:`: a bash script in a process of its own."""

    @property
    def script(self) -> str:
        """The script text, macros not yet expanded."""
        return str(self.raw[self.kind])

    def default_display(self) -> str:
        """`Script: <first line>` / `Bash: <first line>`."""
        return _first_line(self.kind, self.script)


@dataclass(frozen=True)
class ShellStep(Step):
    """`pwsh:` or `powershell:`: a PowerShell script, which this agent cannot run."""

    def default_display(self) -> str:
        """`Pwsh: <first line>` / `Powershell: <first line>`."""
        return _first_line(self.kind, str(self.raw[self.kind]))

    @property
    def refusal(self) -> str:
        """Why the step fails here."""
        return f"step '{self.kind}' is not supported locally (no PowerShell on this agent)"


@dataclass(frozen=True)
class TaskStep(Step):
    """`task: Name@major` with its `inputs:` (tasks/)."""

    @property
    def task(self) -> str:
        """The task reference, e.g. `CopyFiles@2`."""
        return str(self.raw["task"])

    @property
    def inputs(self) -> dict:
        """The task's inputs as written (macros not yet expanded)."""
        return self.raw.get("inputs") or {}

    def default_display(self) -> str:
        """The task reference."""
        return self.task


@dataclass(frozen=True)
class CheckoutStep(Step):
    """`checkout: self | none | <repository resource>`."""

    @property
    def repository(self) -> str:
        """What is checked out."""
        return str(self.raw["checkout"])


@dataclass(frozen=True)
class DownloadStep(Step):
    """`download: current | none | <pipeline resource>` (DownloadPipelineArtifact)."""


@dataclass(frozen=True)
class PublishStep(Step):
    """`publish: <path>` (PublishPipelineArtifact)."""


KINDS: dict[str, type[Step]] = {"script": ScriptStep, "bash": ScriptStep, "task": TaskStep, "checkout": CheckoutStep,
                                "download": DownloadStep, "publish": PublishStep, "pwsh": ShellStep,
                                "powershell": ShellStep}


def kind_of(raw: dict) -> str | None:
    """A step mapping's kind: the first key of STEP_KINDS it has; None when it has none."""
    return next((k for k in STEP_KINDS if k in raw), None)


def new_step(raw, path: str) -> Step:
    """The typed step of a compiled step mapping; an EngineError naming path when it is no mapping or has no
    known kind."""
    if not isinstance(raw, dict):
        raise EngineError(f"{path}: a step must be a mapping")
    kind = kind_of(raw)
    if kind is None:
        raise EngineError(f"{path}: unknown step {sorted(raw)}")
    return KINDS[kind](raw, kind, path)
