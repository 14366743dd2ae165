"""ManualValidation@1 and @0 (task reference manual-validation-v1 / -v0): an agentless job's step that pauses the
run for a person's decision. Here it is one of the run's approvals (server/approvals.py): the run waits in state
"waiting" (no process stays alive), `mlops ci approve RUN` / `mlops ci reject RUN` or the studio decides, and the
run continues with the step Succeeded (resumed) or Failed (rejected), the later steps and jobs following their
conditions. `approvers` (v1) are who may decide (empty: anyone), allowApproversToApproveTheirOwnRuns (v1, default
true) whether the one who queued the run may; the step's timeoutInMinutes (else the job's; 0: the task's 30 days)
bounds the wait, then onTimeout rejects or resumes. notifyUsers and instructions are kept on the approval (`mlops
ci approvals` shows them; no mail is sent here)."""
from __future__ import annotations

from ml_service.ci.runner.tasks.inputs import Input, check

NAME = "ManualValidation@1"
KIND = "server"
INPUTS = {
    "notifyUsers": Input(""),
    "approvers": Input(""),
    "allowApproversToApproveTheirOwnRuns": Input("true"),
    "instructions": Input(""),
    "onTimeout": Input("reject", choices=("reject", "resume")),
}
MAX_MINUTES = 30 * 24 * 60  # "after the specified timeout or 30 days, whichever is earlier"


def problems(given: dict) -> list[str]:
    """What in the inputs as written cannot run (checked before the run); notifyUsers is required (it may be
    '')."""
    found = check(NAME, INPUTS, given)
    if "notifyusers" not in {str(k).lower() for k in (given or {})}:
        found.append(f"{NAME}: input 'notifyUsers' is required (notifyUsers: '' notifies nobody)")
    return found
