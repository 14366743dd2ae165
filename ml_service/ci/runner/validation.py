"""ManualValidation@0/@1 in an agentless job as one of the run's approvals (server/approvals.py decides).

The first time the step is reached it asks for an approval of kind "validation" keyed by the step's path, with
the task's approvers, self-approval, instructions, people to notify and onTimeout, and the run stops in state
"waiting" (the job and stage wait with it; no process stays alive). When the run resumes (`mlops ci approve` /
`reject`, the studio, or the timeout), the step ends Succeeded (resumed) or Failed (rejected; on timeout as
onTimeout says) and the job goes on with its later steps' conditions, as the task does on Azure (task reference
manual-validation-v1: "Resume" continues the run, "Reject" fails the task)."""
from __future__ import annotations

import time

from ml_service.ci.model.pipeline import WAITING, Result, minutes
from ml_service.ci.runner import macros
from ml_service.ci.runner.tasks import manual_validation
from ml_service.ci.runner.tasks.inputs import flag, read


def timeout_minutes(step, job) -> float:
    """The wait's bound: the step's timeoutInMinutes, else the job's; 0 (or more than 30 days): 30 days."""
    own = minutes(step.raw.get("timeoutInMinutes"), f"step {step.display_name}", 0.0)
    chosen = own or job.timeout_minutes
    return min(chosen, manual_validation.MAX_MINUTES) if chosen else manual_validation.MAX_MINUTES


def step(engine, stage, job, step, path: str, variables, log_path) -> str:
    """Run (or resume) one ManualValidation step; its Result, or WAITING."""
    from ml_service.ci.runner import tasks

    module = tasks.module(step.task)
    asked = [a for a in engine.store.approvals(engine.run_id) if a.get("step") == path]
    latest = asked[-1] if asked else None
    if latest is None:
        given = {k: engine.masker(macros.expand(str(v), variables)) for k, v in step.inputs.items()}  # runs.db
        values = read(module.NAME, module.INPUTS, given)
        approvers = ",".join(a.strip() for a in values.get("approvers", "").split(",") if a.strip())
        allow_self = flag(values.get("allowApproversToApproveTheirOwnRuns", "true"))
        engine.store.request_approval(
            engine.run_id, stage.name, job.name, "", timeout_minutes(step, job) * 60, kind="validation", step=path,
            approvers=approvers, allow_self=int(allow_self), instructions=values["instructions"],
            notify=values["notifyUsers"], on_timeout=values["onTimeout"].lower())
        with open(log_path, "a") as log:
            log.write(f"waiting for manual validation (mlops ci approve {engine.run_id} to resume, mlops ci reject "
                      f"{engine.run_id} to reject){': ' + values['instructions'] if values['instructions'] else ''}"
                      f"\nnotify: {values['notifyUsers'] or '(nobody)'} (no mail is sent here; `mlops ci approvals` "
                      f"lists it)\n")
        latest = {"status": "pending"}
    if latest["status"] == "pending":
        engine.record(path, "step", status="waiting", started=time.time(), log=str(log_path),
                      detail="waiting for manual validation")
        return WAITING
    status, who = latest["status"], latest.get("approver") or ""
    if status == "approved":
        result, detail = Result.SUCCEEDED, f"resumed by {who}" + (f": {latest['comment']}" if latest["comment"] else "")
    elif status == "timed out" and latest.get("on_timeout") == "resume":
        result, detail = Result.SUCCEEDED, "timed out: resumed (onTimeout: resume)"
    elif status == "timed out":
        result, detail = Result.FAILED, "timed out: rejected (onTimeout: reject)"
    else:
        result, detail = Result.FAILED, f"rejected by {who or 'nobody'}" + (
            f": {latest['comment']}" if latest.get("comment") else "")
    if result == Result.FAILED and step.continue_on_error:
        result, detail = Result.SUCCEEDED_WITH_ISSUES, f"continued on error: {detail}"
    with open(log_path, "a") as log:
        log.write(("##[error]" if result == Result.FAILED else "") + detail + "\n")
    engine.record(path, "step", status="completed", result=result, finished=time.time(), detail=detail)
    return result
