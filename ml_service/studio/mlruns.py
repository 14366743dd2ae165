"""ML pipeline runs and registered models as the Studio shows them, read from MLflow (imported lazily).

A pipeline run is the parent MLflow run (tag mlops.kind=pipeline); each step is a nested run, reused
when it carries mlops.step.reused_from (its outputs, plots and reports are then the source run's).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlparse

from ml_service.config import Settings
from ml_service.pipelines.runner import OUTCOME_TAG, OUTPUTS, REUSED_TAG

DATA_REPORT = "data_validation.html"
SHOWN = (".png", ".svg", ".jpg", ".jpeg")
SAFE_PATH = re.compile(r"^[\w.\-/]+$")


@dataclass
class PipelineRun:
    """One ML pipeline run (the parent MLflow run)."""

    run_id: str
    experiment_id: str
    name: str
    model: str
    status: str
    outcome: str
    started: float
    seconds: float | None
    build_id: str
    commit: str
    branch: str
    error: str = ""
    params: dict = field(default_factory=dict)


@dataclass
class StepRun:
    """One step of an ML pipeline run."""

    name: str
    run_id: str
    state: str  # ran, reused, skipped, failed, running
    source_run_id: str
    seconds: float | None
    metrics: dict
    outcome: str = ""
    error: str = ""
    plots: list[str] = field(default_factory=list)
    data_report: bool = False


def _seconds(info) -> float | None:
    return (info.end_time - info.start_time) / 1000 if info.end_time and info.start_time else None


def _pipeline(run) -> PipelineRun:
    tags = run.data.tags
    return PipelineRun(run.info.run_id, run.info.experiment_id, tags.get("mlops.pipeline.name", run.info.run_name),
                       tags.get("mlops.model.name", ""), run.info.status, tags.get(OUTCOME_TAG, ""),
                       run.info.start_time / 1000, _seconds(run.info), tags.get("BuildId", ""),
                       tags.get("mlflow.source.git.commit", ""), tags.get("mlflow.source.git.branch", ""),
                       tags.get("mlops.error", ""), dict(run.data.params))


def experiment_ids(client, settings: Settings) -> list[str]:
    """The experiments of every model project in mlops.yml that exist."""
    return [found for found in (experiment_id(client, m.experiment) for m in settings.models) if found]


def pipeline_runs(client, settings: Settings, limit: int = 100) -> list[PipelineRun]:
    """The newest ML pipeline runs of every model project."""
    ids = experiment_ids(client, settings)
    if not ids:
        return []
    runs = client.search_runs(ids, "tags.`mlops.kind` = 'pipeline'", order_by=["attributes.start_time DESC"],
                              max_results=limit)
    return [_pipeline(r) for r in runs]


def pipeline_run(client, run_id: str) -> PipelineRun:
    """One pipeline run by id (MlflowException when there is none)."""
    return _pipeline(client.get_run(run_id))


def steps(client, parent_id: str) -> list[StepRun]:
    """The steps of a pipeline run in the order they started, skipped ones included."""
    parent = client.get_run(parent_id)
    children = client.search_runs([parent.info.experiment_id], f"tags.`mlflow.parentRunId` = '{parent_id}'",
                                  order_by=["attributes.start_time ASC"], max_results=200)
    found = []
    for child in children:
        tags = child.data.tags
        source = tags.get(REUSED_TAG) or child.info.run_id
        if tags.get(REUSED_TAG):
            state = "reused"
        elif child.info.status == "FAILED" or tags.get("mlops.step.error"):
            state = "failed"
        elif child.info.status == "RUNNING":
            state = "running"
        else:
            state = "ran"
        step = StepRun(tags.get("mlops.step.name", child.info.run_name), child.info.run_id, state, source,
                       _seconds(child.info), dict(child.data.metrics), tags.get(OUTCOME_TAG, ""),
                       tags.get("mlops.step.error", ""))
        try:
            outputs = [a.path for a in client.list_artifacts(source, OUTPUTS)]
        except Exception:  # an artifact store that cannot be listed: show the step without files
            outputs = []
        step.plots = [p for p in outputs if p.lower().endswith(SHOWN)]
        step.data_report = f"{OUTPUTS}/{DATA_REPORT}" in outputs
        found.append(step)
    for key, value in parent.data.tags.items():
        if key.startswith("mlops.step.") and value == "skipped":
            found.append(StepRun(key[len("mlops.step."):], "", "skipped", "", None, {}))
    return found


def artifact_path(client, run_id: str, path: str) -> tuple[Path | None, Path | None]:
    """One artifact file of a run, and the temporary folder of its copy when it had to be downloaded (a
    server's artifacts: the caller deletes it once sent); (None, None) for a path that is not a plain
    relative one or not a file."""
    if not SAFE_PATH.match(path) or ".." in path.split("/"):
        return None, None
    uri = client.get_run(run_id).info.artifact_uri
    if uri.startswith("file:"):
        root = Path(unquote(urlparse(uri).path)).resolve()
        local = (root / path).resolve()
        return (local, None) if local.is_file() and local.is_relative_to(root) else (None, None)
    import shutil
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="mlops-studio-"))  # 0700
    try:
        found = Path(client.download_artifacts(run_id, path, str(folder)))
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    if not found.is_file():
        shutil.rmtree(folder, ignore_errors=True)
        return None, None
    return found, folder


@dataclass
class ModelRow:
    """A registered model version with its lineage and where it is live."""

    name: str
    version: str
    aliases: list[str]
    metric: str
    value: str
    created: float
    dataset: str
    commit: str
    pipeline_run_id: str
    build: str
    live: list[str]


# (client, name) -> (client, id): an experiment keeps its id, deleted or restored. The client is held
# so that its id() names it for as long as the entry lives.
_EXPERIMENTS: dict[tuple[int, str], tuple[object, str]] = {}


def experiment_id(client, name: str) -> str | None:
    """The id of an experiment by name, looked up once per client."""
    key = (id(client), name)
    if key not in _EXPERIMENTS:
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            return None
        _EXPERIMENTS[key] = (client, experiment.experiment_id)
    return _EXPERIMENTS[key][1]


def where_live(client, model_name: str, environment: str = "") -> dict[str, list[str]]:
    """Version -> environments where it is live, or is the newest desired (GitOps) state, from the
    deployment records of one model (and one environment, when named); one query."""
    from ml_service.deploy import records

    experiment = experiment_id(client, records.EXPERIMENT)
    if experiment is None:
        return {}
    query = f"tags.`mlops.kind` = 'deployment' and tags.model_name = '{model_name}'"
    if environment:
        query += f" and tags.environment = '{environment}'"
    found: dict[str, set[str]] = {}
    desired_seen = set()
    for run in client.search_runs([experiment], query, order_by=["attributes.start_time DESC"], max_results=1000):
        tags = run.data.tags
        place, version, status = tags.get("environment", ""), tags.get("model_version", ""), tags.get("status")
        if tags.get("track") == records.CANARY:
            place = f"{place} canary"
        if status == records.LIVE:
            found.setdefault(version, set()).add(place)
        elif status in (records.DESIRED, records.REMOVED) and place not in desired_seen:
            desired_seen.add(place)  # the newest desired-or-removed record of a place decides
            if status == records.DESIRED:
                found.setdefault(version, set()).add(f"{place} (desired state)")
    return {version: sorted(places) for version, places in found.items()}


def models(client, settings: Settings) -> dict[str, list[ModelRow]]:
    """Registered model name -> its versions, newest first, for every model project."""
    from ml_service.workspace import registry

    shown = {}
    for project in settings.models:
        live = where_live(client, project.name)
        rows = []
        for v in registry.list_versions(client, project.name):
            tags = v.tags
            dataset = " ".join(filter(None, [tags.get("dataset_name", ""), tags.get("dataset_digest", "")[:12]]))
            rows.append(ModelRow(v.name, v.version, v.aliases, v.metric, tags.get(v.metric, ""), v.created / 1000,
                                 dataset, tags.get("git_commit", ""), tags.get("pipeline_run_id", ""),
                                 tags.get("BuildId", ""), live.get(v.version, [])))
        shown[project.name] = rows
    return shown
