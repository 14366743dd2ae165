"""Deployment records in the workspace: which model version runs where, since when, and how.

Each deployment is a run in the experiment `mlops-deployments`, so a team sharing an MLflow
server sees the same records. Status is one of: live, replaced, failed, desired (a GitOps
state committed but not applied to a cluster).
"""
from __future__ import annotations

import time
from dataclasses import dataclass

from ml_service.config import Settings
from ml_service.workspace import tracking

EXPERIMENT = "mlops-deployments"
LIVE, REPLACED, FAILED, DESIRED = "live", "replaced", "failed", "desired"


@dataclass(frozen=True)
class Deployment:
    """One deployment of a model version to an environment."""

    id: str
    environment: str
    model_name: str
    version: str
    image: str
    url: str
    status: str
    mode: str
    time: float
    detail: str = ""
    target: str = ""


def _store(settings: Settings):
    client = tracking.connect(settings)
    return client, tracking.ensure_experiment(client, settings, EXPERIMENT)


def _from_run(run) -> Deployment:
    tags = run.data.tags
    return Deployment(id=run.info.run_id, environment=tags.get("environment", ""),
                      model_name=tags.get("model_name", ""), version=tags.get("model_version", ""),
                      image=tags.get("image", ""), url=tags.get("url", ""), status=tags.get("status", ""),
                      mode=tags.get("mode", ""), time=run.info.start_time / 1000, detail=tags.get("detail", ""),
                      target=tags.get("target", ""))


def record(settings: Settings, environment: str, model_name: str, version: str, image: str, url: str,
           status: str, mode: str, detail: str = "", target: str = "") -> Deployment:
    """Record a deployment; a new live one marks the previous live one of that environment replaced."""
    client, experiment_id = _store(settings)
    if status == LIVE:
        for previous in list_deployments(settings, environment):
            if previous.status == LIVE and previous.model_name == model_name:
                client.set_tag(previous.id, "status", REPLACED)
    tags = {"mlops.kind": "deployment", "environment": environment, "model_name": model_name,
            "model_version": str(version), "image": image, "url": url, "status": status, "mode": mode,
            "detail": detail[:4000], "target": target}
    if settings.user:
        tags["mlflow.user"] = settings.user
    run = client.create_run(experiment_id, run_name=f"{environment}: {model_name} v{version}", tags=tags)
    client.set_terminated(run.info.run_id, "FINISHED" if status != FAILED else "FAILED")
    return _from_run(client.get_run(run.info.run_id))


def list_deployments(settings: Settings, environment: str | None = None) -> list[Deployment]:
    """Deployments, newest first, optionally of one environment."""
    client, experiment_id = _store(settings)
    query = "tags.`mlops.kind` = 'deployment'"
    if environment:
        query += f" and tags.environment = '{environment}'"
    runs = client.search_runs([experiment_id], query, order_by=["attributes.start_time DESC"], max_results=1000)
    return [_from_run(run) for run in runs]


def current(settings: Settings, environment: str, model_name: str | None = None) -> Deployment | None:
    """The live deployment of an environment (of one model, when named), if any."""
    return next((d for d in list_deployments(settings, environment)
                 if d.status == LIVE and model_name in (None, d.model_name)), None)


def current_rows(rows: list[Deployment]) -> list[Deployment]:
    """Of deployments newest first: the latest live and desired one per model and environment."""
    seen, latest = set(), []
    for d in rows:
        key = (d.model_name, d.environment, d.status)
        if d.status in (LIVE, DESIRED) and key not in seen:
            seen.add(key)
            latest.append(d)
    return latest


def live_versions(settings: Settings, model_name: str) -> dict[str, set[str]]:
    """Version -> environments in which it is live or is the committed desired state."""
    found: dict[str, set[str]] = {}
    latest: dict[str, Deployment] = {}
    for deployment in list_deployments(settings):
        if deployment.model_name != model_name:
            continue
        if deployment.status == LIVE:
            found.setdefault(deployment.version, set()).add(deployment.environment)
        if deployment.status == DESIRED and deployment.environment not in latest:
            latest[deployment.environment] = deployment
    for environment, deployment in latest.items():
        found.setdefault(deployment.version, set()).add(f"{environment} (desired state)")
    return found


def iso_time(seconds: float) -> str:
    """UTC time in ISO 8601, for JSON."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def format_time(seconds: float) -> str:
    """Local time for tables."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(seconds))
