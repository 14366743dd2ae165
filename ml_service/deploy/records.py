"""Deployment records in the workspace: which model version runs where, since when, and how.

Each deployment is a run in the experiment `mlops-deployments`, so a team sharing an MLflow
server sees the same records. Status is one of: live, replaced, failed, desired (a GitOps
state committed but not applied to a cluster), removed (a canary that was promoted or aborted).
Production has two tracks: `stable` and, while one runs, `canary` (the release the stable
release's HTTPRoute sends a share of the traffic to).
"""
from __future__ import annotations

import time
from dataclasses import dataclass

from ml_service import identity
from ml_service.config import Settings
from ml_service.workspace import tracking

EXPERIMENT = "mlops-deployments"
LIVE, REPLACED, FAILED, DESIRED, REMOVED = "live", "replaced", "failed", "desired", "removed"
STABLE, CANARY = "stable", "canary"
PAGE_SIZE = 1000  # runs per search request (MLflow's default page)


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
    track: str = STABLE


def _store(settings: Settings):
    client = tracking.connect(settings)
    return client, tracking.ensure_experiment(client, settings, EXPERIMENT)


def _from_run(run) -> Deployment:
    tags = run.data.tags
    return Deployment(id=run.info.run_id, environment=tags.get("environment", ""),
                      model_name=tags.get("model_name", ""), version=tags.get("model_version", ""),
                      image=tags.get("image", ""), url=tags.get("url", ""), status=tags.get("status", ""),
                      mode=tags.get("mode", ""), time=run.info.start_time / 1000, detail=tags.get("detail", ""),
                      target=tags.get("target", ""), track=tags.get("track") or STABLE)


def record(settings: Settings, environment: str, model_name: str, version: str, image: str, url: str,
           status: str, mode: str, detail: str = "", target: str = "", track: str = STABLE) -> Deployment:
    """Record a deployment; a new live one (or a removed canary) marks the previous live one of that environment
    and track replaced."""
    client, experiment_id = _store(settings)
    if status in (LIVE, REMOVED):
        for previous in list_deployments(settings, environment):
            if previous.status == LIVE and previous.model_name == model_name and previous.track == track:
                client.set_tag(previous.id, "status", REPLACED)
    tags = {"mlops.kind": "deployment", "environment": environment, "model_name": model_name,
            "model_version": str(version), "image": image, "url": url, "status": status, "mode": mode,
            "detail": detail[:4000], "target": target, "track": track}
    tags.update(identity.run_user_tags(settings))
    name = f"{environment}{' canary' if track == CANARY else ''}: {model_name} v{version}"
    run = client.create_run(experiment_id, run_name=name, tags=tags)
    client.set_terminated(run.info.run_id, "FINISHED" if status != FAILED else "FAILED")
    return _from_run(client.get_run(run.info.run_id))


def list_deployments(settings: Settings, environment: str | None = None) -> list[Deployment]:
    """Deployments, newest first, optionally of one environment."""
    client, experiment_id = _store(settings)
    query = "tags.`mlops.kind` = 'deployment'"
    if environment:
        query += f" and tags.environment = '{environment}'"
    found, token = [], None
    while True:  # every page: a version live since 1000 deployments ago is still live (and not deletable)
        page = client.search_runs([experiment_id], query, order_by=["attributes.start_time DESC"],
                                  max_results=PAGE_SIZE, page_token=token)
        found += [_from_run(run) for run in page]
        token = page.token
        if not token:
            return found


def current(settings: Settings, environment: str, model_name: str | None = None,
            track: str = STABLE) -> Deployment | None:
    """The live deployment of an environment (of one model, when named; the stable track unless told), if any."""
    return next((d for d in list_deployments(settings, environment)
                 if d.status == LIVE and model_name in (None, d.model_name) and d.track == track), None)


def current_rows(rows: list[Deployment]) -> list[Deployment]:
    """Of deployments newest first: the latest live and desired one per model, environment and track, newer than
    the track's latest removed record (a canary promoted or aborted): what came before a removal is not current."""
    seen, ended, latest = set(), set(), []
    for d in rows:
        track = (d.model_name, d.environment, d.track)
        if d.status == REMOVED:
            ended.add(track)
        key = (*track, d.status)
        if d.status in (LIVE, DESIRED) and key not in seen and track not in ended:
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
        where = deployment.environment + (" canary" if deployment.track == CANARY else "")
        if deployment.status == LIVE:
            found.setdefault(deployment.version, set()).add(where)
        if deployment.status in (DESIRED, REMOVED) and where not in latest:
            latest[where] = deployment
    for where, deployment in latest.items():
        if deployment.status == DESIRED:
            found.setdefault(deployment.version, set()).add(f"{where} (desired state)")
    return found


def iso_time(seconds: float) -> str:
    """UTC time in ISO 8601, for JSON."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def format_time(seconds: float) -> str:
    """Local time for tables."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(seconds))
