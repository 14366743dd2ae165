"""Environment approvals: an environment's check (mlops.yml environments.<name>.approval), the decision on a
run's pending approval (who may decide, with which proof, self-approval), and the supersession of older runs
waiting for one. The runner only asks for an approval (executor.py); the decision is taken here."""
from __future__ import annotations

import time

from ml_service import identity as same_user
from ml_service.ci.server import identity as ident
from ml_service.ci.server.errors import CIError
from ml_service.ci.server.store import Store
from ml_service.config import Settings
from ml_service.sections import Approval


def approval_config(settings: Settings, environment: str) -> Approval | None:
    """The approval check of an environment (mlops.yml environments.<name>.approval), or None when it has none."""
    found = settings.environments.get(environment)
    return found.approval if found is not None else None


def decide(settings: Settings, store: Store, run_id: int, approve: bool, comment: str,
           stage: str | None = None, *, approver: str | None = None) -> dict:
    """Approve or reject the pending approval of a run.

    When the environment lists approvers, the decision needs proof of an approver's identity:
    `approver` is a name the caller has already authenticated (the studio passes the user of its
    login session; recorded with proof "session"); without it (the CLI), MLOPS_TOKEN's personal
    token (`mlops ci token create`) or the operating-system account. MLOPS_USER or git user.email
    alone is a claim, never proof. With allow_self_approval false, whoever requested the run (by
    the name they gave or by the identities they proved) may not approve it. Only one decision is
    taken on an approval, whatever runs at once. Returns the approval with "approver" and "proof".
    A ManualValidation's approval (kind "validation") takes its approvers and self-approval from the task's
    inputs, and a rejection does not end the run: the run resumes and the step fails (runner/validation.py).
    """
    pending = [a for a in store.approvals(run_id, "pending") if stage is None or a["stage"] == stage]
    if not pending:
        raise CIError(f"run {run_id} has no pending approval" + (f" in stage {stage}" if stage else ""))
    approval = pending[0]
    if approval.get("kind") == "validation":  # a ManualValidation step: its own approvers (runner/validation.py)
        check = Approval(approvers=tuple(a for a in (approval.get("approvers") or "").split(",") if a),
                         allow_self_approval=bool(approval.get("allow_self", 1)))
    else:
        check = approval_config(settings, approval["environment"]) or Approval()
    if approver is None:
        _not_from_a_step(store)
    try:
        candidates = ident.proven(settings, approver, recheck=True)
    except ident.IdentityError as exc:
        raise CIError(str(exc)) from None
    if check.approvers:
        who = next((i for i in candidates if same_user.among(i.name, check.approvers)), None)
        if who is None:
            listed = (f"environment {approval['environment']}" if approval.get("kind") != "validation" else
                      f"the manual validation {approval['step']}") + f" (approvers: {', '.join(check.approvers)})"
            if approver:
                raise CIError(f"{approver} is not an approver of {listed}")
            claimed = ident.claimed_name(settings)
            by_claim = same_user.among(claimed, check.approvers)
            head = f"{claimed} is {'an approver' if by_claim else 'not an approver'} of {listed}" + \
                (" only by claim" if by_claim else "")
            raise CIError(f"{head}: MLOPS_USER and git user.email are claims, not proof (proven here: "
                          f"{', '.join(map(str, candidates))}). Prove an approver's identity: MLOPS_TOKEN=<the token "
                          "`mlops ci token create --name NAME` printed>, run as that OS account, or decide in the "
                          "studio")
    else:  # anyone may decide: the best identity there is
        who = candidates[0] if candidates[0].proof in ("session", "token") else \
            ident.Identity(ident.claimed_name(settings), "claimed")
    run = store.get_run(run_id)
    requester = [run.requested_by, *(i.name for i in ident.parse(run.requested_proof))]
    if approve and not check.allow_self_approval and same_user.among(who.name, requester):
        raise CIError(f"{who.name} requested run {run_id} and may not approve it (allow_self_approval is false)")
    if not store.decide(approval["id"], "approved" if approve else "rejected", who.name, comment, proof=who.proof):
        raise CIError(f"run {run_id}: the approval of stage {approval['stage']} was decided meanwhile")
    if not approve and approval.get("kind") != "validation":  # a rejected validation: its step fails on resume
        now = time.time()
        for record in store.records(run_id):
            if record["status"] == "waiting":
                store.set_record(run_id, record["path"], record["kind"], status="completed", result="Failed",
                                 finished=now, detail=f"rejected by {who.name}: {comment}")
        store.update_run(run_id, status="completed", result="rejected", finished=now)
    return {**approval, "approver": who.name, "proof": who.proof}


def supersede_older(store: Store, run_id: int) -> list[int]:
    """A run that now waits for approval supersedes older runs of the same pipeline that wait too (as an
    exclusive lock check does on Azure DevOps): they are canceled, their approvals rejected, and the new
    run's summary says so. Returns the superseded run ids."""
    run = store.get_run(run_id)
    older = [r for r in store.list_runs(1000) if r.pipeline == run.pipeline and r.status == "waiting"
             and r.id < run_id]
    for old in older:
        for approval in store.approvals(old.id, "pending"):
            store.decide(approval["id"], "rejected", "", f"superseded by run {run_id}")
        store.update_run(old.id, status="completed", result="canceled", finished=time.time())
    if older:
        state = store.get_run(run_id).state or {}
        ids = ", ".join(str(r.id) for r in older)
        state.setdefault("summaries", []).append(f"superseded: run(s) {ids} of {run.pipeline} no longer wait "
                                                 "for approval (this newer run does)")
        store.update_run(run_id, state=state)
    return [r.id for r in older]


def _not_from_a_step(store: Store) -> None:
    """CIError when this process descends from the engine of a running pipeline run: a step runs whoever pushed its
    code, as the OS account (an approver's proof on the command line). The Studio's session is not affected."""
    import os

    from ml_service.ci.runner.reaper import ancestors

    engines = store.running_engines()
    inside = next((engines[pid] for pid in ancestors(os.getpid()) if pid in engines), None)
    if inside is not None:
        raise CIError(f"a decision cannot be taken from inside pipeline run {inside}: its steps run the code of "
                      "whoever pushed it, as this OS account. Decide in the Studio, or with `mlops ci approve` from "
                      "a shell of your own")
