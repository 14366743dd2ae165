"""What the agent does with a step's logging commands beyond reading them (process.py reads them): the result
names task.complete takes and how they merge with the step's end, and a step's `target:` restrictions on the
commands it may use and the variables it may set.
"""
from __future__ import annotations

from ml_service.ci.model.pipeline import Result
from ml_service.ci.runner import process
from ml_service.ci.runner.tasks import minimatch

# task.complete result=...: the agent's TaskResult names, read with Enum.TryParse (case-sensitive)
COMPLETE_RESULTS = {"Succeeded": Result.SUCCEEDED, "SucceededWithIssues": Result.SUCCEEDED_WITH_ISSUES,
                    "Failed": Result.FAILED, "Canceled": Result.CANCELED, "Skipped": Result.SKIPPED,
                    "Abandoned": Result.FAILED}
RESULT_ORDER = [Result.SUCCEEDED, Result.SUCCEEDED_WITH_ISSUES, Result.FAILED, Result.CANCELED, Result.SKIPPED]
# logging commands a step with `target: {commands: restricted}` may still use (the agent's
# [CommandRestriction(AllowedInRestrictedMode = true)]: TaskCommandExtension.cs, TelemetryCommandExtension.cs)
RESTRICTED_ALLOWED = {"task.logdetail", "task.logissue", "task.complete", "task.setprogress", "task.setsecret",
                      "task.setvariable", "task.debug", "task.settaskvariable", "task.prependpath",
                      "telemetry.publish"}


def merge_results(current: Result, coming: Result) -> Result:
    """The agent's TaskResultUtil.MergeTaskResults: Canceled or Skipped stay; otherwise the worse one wins."""
    if RESULT_ORDER.index(current) > RESULT_ORDER.index(Result.FAILED):
        return current
    return coming if RESULT_ORDER.index(coming) >= RESULT_ORDER.index(current) else current


class Restrictions:
    """A step's `target: {commands: any | restricted, settableVariables: none | [patterns]}`
    (yaml-schema steps.script "target"; the agent's TaskRestrictionsChecker.cs and TaskRestrictionsExtension.cs):
    a refused command or variable is ignored with a warning, as the agent does, and the step goes on."""

    def __init__(self, restricted: bool, allowed: list[str] | None):
        self.restricted = restricted
        self.allowed = allowed  # None: every variable may be set; []: none

    @classmethod
    def of(cls, target) -> "Restrictions":
        if not isinstance(target, dict):
            return cls(False, None)
        restricted = str(target.get("commands", "any")).strip().lower() == "restricted"
        settable = target.get("settableVariables")
        if settable is None:
            allowed = None
        elif isinstance(settable, str) and settable.strip().lower() == "none":
            allowed = []
        elif isinstance(settable, dict):  # settableVariables: {allowed: [...]}, the long form
            allowed = [str(v) for v in settable.get("allowed") or []]
        elif isinstance(settable, list):
            allowed = [str(v) for v in settable]
        else:
            allowed = [str(settable)]
        return cls(restricted, allowed)

    def allows(self, command: process.Command, issues: list[str]) -> bool:
        if self.restricted and command.area not in RESTRICTED_ALLOWED:
            issues.append(f"warning: ##vso[{command.area}] is not allowed in this step (target commands: restricted)"
                          " and was ignored")
            return False
        return True

    def settable(self, variable: str, issues: list[str]) -> bool:
        if self.allowed is None or any(minimatch.matches(variable.lower(), [pattern.lower()])
                                       for pattern in self.allowed):  # Minimatcher.Check, IgnoreCase
            return True
        issues.append(f"warning: variable {variable} may not be set by this step (target settableVariables) and was "
                      "not set")
        return False
