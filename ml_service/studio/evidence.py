"""What an approver sees before deciding: the version a waiting release would ship, the candidate's
metric against the champion's on the same test split (recorded by the pipeline's evaluate step),
the QA smoke test, the data validation report, what production runs now."""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from ml_service.ci.server.store import Run, Store
from ml_service.config import Settings
from ml_service.sections import Approval
from ml_service.workspace.refs import ModelRefError, parse_model_ref

CHAMPION_VERSION = re.compile(r"champion v(\S+)")


@dataclass
class Evidence:
    """Everything the approvals page shows for one waiting run."""

    run: Run
    approval: dict
    ref: str = ""
    model_name: str = ""
    version: str = ""
    metric: str = ""
    candidate: float | None = None
    champion: float | None = None
    champion_version: str = ""
    decision: str = ""
    pipeline_run_id: str = ""
    experiment_id: str = ""
    data_report_run: str = ""
    drift: dict = field(default_factory=dict)
    smoke: list[dict] = field(default_factory=list)
    production: str = ""
    approvers: list[str] = field(default_factory=list)
    self_approval: bool = True
    problems: list[str] = field(default_factory=list)


def release_ref(store: Store, run: Run) -> str:
    """NAME:VERSION a release run ships: its `model` parameter, an output variable named `ref`, or the
    `model` artifact (model.json) of the run that triggered it; "" when none says."""
    model = str((run.params or {}).get("model") or "")
    if ":" in model:
        return model
    for key, value in sorted((run.state or {}).get("outputs", {}).items()):
        if key.endswith(".ref") and ":" in str(value):
            return str(value)
    for resource in (run.resources or {}).values():
        try:
            found = json.loads((store.artifacts_dir(int(resource["runID"])) / "model" / "model.json").read_text())
            return f"{found['name']}:{found['version']}"
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return ""


def gather(settings: Settings, store: Store, approval: dict, client=None) -> Evidence:
    """The evidence for one pending approval (client: an MlflowClient, or None to skip MLflow)."""
    from ml_service.ci.server.approvals import approval_config

    run = store.get_run(approval["run_id"])
    evidence = Evidence(run, approval, ref=release_ref(store, run))
    if approval.get("kind") == "validation":  # a ManualValidation step: the task's own approvers
        check = Approval(approvers=tuple(a for a in (approval.get("approvers") or "").split(",") if a),
                         allow_self_approval=bool(approval.get("allow_self", 1)))
    else:
        check = approval_config(settings, approval["environment"]) or Approval()
    evidence.approvers = list(check.approvers)
    evidence.self_approval = check.allow_self_approval
    evidence.smoke = [r for r in store.records(run.id) if r["kind"] == "step" and "smoke" in
                      f"{r['name']} {r['display']}".lower()]
    if not evidence.ref:
        evidence.problems.append("the run does not say which model version it releases")
        return evidence
    try:
        parsed = parse_model_ref(evidence.ref)
    except ModelRefError as exc:
        evidence.problems.append(f"the run's model version is no model reference: {exc}")
        return evidence
    if parsed.version is None:
        evidence.problems.append(f"the run's model reference {evidence.ref!r} names no version (NAME:VERSION)")
        return evidence
    evidence.model_name, evidence.version = parsed.name, str(parsed.version)
    if client is not None:
        _from_mlflow(settings, client, evidence)
    return evidence


def _from_mlflow(settings: Settings, client, evidence: Evidence) -> None:
    from mlflow.exceptions import MlflowException

    try:
        version = client.get_model_version(evidence.model_name, evidence.version)
    except MlflowException as exc:
        evidence.problems.append(f"{evidence.ref} is not in the registry: {exc.message}")
        return
    tags = dict(version.tags)
    evidence.metric = tags.get("metric", "")
    evidence.drift = {k: v for k, v in tags.items() if k.startswith("drift")}
    evidence.pipeline_run_id = tags.get("pipeline_run_id", "")
    from ml_service.studio import mlruns

    live = mlruns.where_live(client, evidence.model_name, evidence.approval["environment"])
    evidence.production = ", ".join(f"{v} ({', '.join(places)})" if "desired" in " ".join(places) else v
                                    for v, places in sorted(live.items()))
    if not evidence.pipeline_run_id:
        evidence.problems.append(f"{evidence.ref} names no pipeline run (tag pipeline_run_id)")
        return
    try:
        evidence.experiment_id, steps = _recorded_steps(client, evidence.pipeline_run_id)
    except MlflowException as exc:
        evidence.problems.append(f"pipeline run {evidence.pipeline_run_id}: {exc.message}")
        return
    for step in steps:
        metrics = step.metrics
        if evidence.metric and f"candidate_{evidence.metric}" in metrics:
            evidence.candidate = metrics[f"candidate_{evidence.metric}"]
            evidence.champion = metrics.get(f"champion_{evidence.metric}")
            evidence.decision = step.outcome
            found = CHAMPION_VERSION.search(step.outcome)
            evidence.champion_version = found.group(1) if found else ""
        if step.data_report:
            evidence.data_report_run = step.source_run_id
    if evidence.candidate is None and evidence.metric in tags:
        evidence.candidate = float(tags[evidence.metric])
        evidence.problems.append("no evaluate step recorded both numbers; the candidate's registered metric is shown")


_FINISHED: dict[str, tuple[str, list]] = {}  # pipeline run id -> (experiment, steps) of runs that ended


def _recorded_steps(client, run_id: str) -> tuple[str, list]:
    """The experiment and steps of a pipeline run; kept once the run has ended (they no longer change)."""
    if run_id in _FINISHED:
        return _FINISHED[run_id]
    from ml_service.studio import mlruns

    run = mlruns.pipeline_run(client, run_id)
    found = (run.experiment_id, mlruns.steps(client, run_id))
    if run.status in ("FINISHED", "FAILED", "KILLED") and len(_FINISHED) < 1000:
        _FINISHED[run_id] = found
    return found
