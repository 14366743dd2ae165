"""`mlops deploy status production`: for each model, what production should run (desired), what a cluster
says it runs (observed), and whether they agree.

Desired is the GitOps target's last commit for the model (values-prod.yaml, values-canary.yaml) in
GitOps mode; when a cluster answers, mlops applies with helm and desired is what the deploy records
say it applied. Observed is what helm applied to the
cluster (`helm get values` of the stable and canary releases) when a cluster answers; otherwise it is
unknown, said so, and never guessed: a GitOps controller may or may not have applied the commit.
"""
from __future__ import annotations

from ml_service.config import Settings
from ml_service.deploy import records
from ml_service.deploy.cluster import cluster_mode
from ml_service.deploy.state import ProductionState, image_reference, read_state


def _track(values: dict | None) -> dict | None:
    return None if values is None else {"version": str(values["model"]["version"]), "image": image_reference(values)}


def summary(state: ProductionState | None) -> dict | None:
    """The stable and canary versions and images of a state, and the canary's share of the traffic."""
    if state is None:
        return None
    return {"stable": _track(state.stable), "canary": _track(state.canary), "canary_weight": state.weight,
            **state.source}


def _from_records(rows: list[records.Deployment]) -> dict | None:
    live = {d.track: d for d in rows if d.status == records.LIVE}
    if records.STABLE not in live:
        return None
    track = {name: {"version": d.version, "image": d.image} for name, d in live.items()}
    return {"stable": track[records.STABLE], "canary": track.get(records.CANARY), "canary_weight": None,
            "source": "deploy records (what mlops applied with helm)"}


def model_status(settings: Settings, model_name: str, available: bool, reason: str) -> dict:
    """Desired, observed and recorded production state of one model."""
    rows = [d for d in records.current_rows(records.list_deployments(settings, "production"))
            if d.model_name == model_name]
    if available:  # mlops applies with helm, the GitOps target is not written: desired is what it applied
        desired = _from_records(rows)
    else:
        desired = summary(read_state(settings, model_name, in_cluster=False))
        if desired is not None:
            desired["source"] = "GitOps target"
    observed = summary(read_state(settings, model_name, in_cluster=True)) if available else None
    if available:
        in_sync = desired is not None and observed is not None and all(
            desired[key] == observed[key] for key in ("stable", "canary")) and \
            desired["canary_weight"] in (None, observed["canary_weight"])
        detail = "observed with helm get values" if observed else "the cluster has no release of it"
    else:
        in_sync, detail = None, f"unknown: {reason}; a GitOps controller may have applied the desired state"
    return {"model": model_name, "environment": "production", "mode": "helm" if available else "gitops",
            "desired": desired, "observed": observed, "observed_detail": detail, "in_sync": in_sync,
            "records": [{"track": d.track, "version": d.version, "status": d.status, "mode": d.mode,
                         "image": d.image, "since": records.iso_time(d.time), "target": d.target} for d in rows]}


def production_status(settings: Settings, model_names: list[str]) -> list[dict]:
    """model_status for each model."""
    available, reason = cluster_mode()
    return [model_status(settings, name, available, reason) for name in model_names]


def _line(state: dict | None) -> str:
    if state is None:
        return "nothing"
    text = f"stable version {state['stable']['version']} ({state['stable']['image']})"
    if state["canary"]:
        weight = f" at {state['canary_weight']}%" if state["canary_weight"] is not None else ""
        text += f", canary version {state['canary']['version']}{weight} ({state['canary']['image']})"
    return text


def render(rows: list[dict]) -> str:
    """The human report."""
    lines = []
    for row in rows:
        desired = row["desired"]
        where = ""
        if desired and desired.get("commit"):
            where = f" [commit {desired['commit'][:12]} {desired['time']}: {desired['subject']}]"
        elif desired:
            where = f" [{desired['source']}]"
        verdict = {True: "in sync", False: "OUT OF SYNC", None: "unknown"}[row["in_sync"]]
        lines += [f"{row['model']} in production ({row['mode']} mode): {verdict}",
                  f"  desired:  {_line(desired)}{where}",
                  f"  observed: {_line(row['observed']) if row['observed'] else row['observed_detail']}"]
        for d in row["records"]:
            lines.append(f"  recorded: {d['track']} version {d['version']} {d['status']} ({d['mode']}) since "
                         f"{d['since']}")
    return "\n".join(lines) if lines else "no model projects in mlops.yml"
