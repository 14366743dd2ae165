"""ManualValidation@0 (task reference manual-validation-v0): as ManualValidation@1 (manual_validation.py) without
approvers: anyone may decide."""
from __future__ import annotations

from ml_service.ci.runner.tasks.inputs import Input, check

NAME = "ManualValidation@0"
KIND = "server"
INPUTS = {
    "notifyUsers": Input(""),
    "instructions": Input(""),
    "onTimeout": Input("reject", choices=("reject", "resume")),
}


def problems(given: dict) -> list[str]:
    """What in the inputs as written cannot run (checked before the run)."""
    found = check(NAME, INPUTS, given)
    if "notifyusers" not in {str(k).lower() for k in (given or {})}:
        found.append(f"{NAME}: input 'notifyUsers' is required (notifyUsers: '' notifies nobody)")
    return found
