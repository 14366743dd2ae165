"""Published pipelines: named, versioned pipeline definitions kept in the workspace (MLflow).

Each published version is a run in the experiment `mlops-published-pipelines`, carrying the
definition as the artifact pipeline.yml; the default version of each name is an experiment tag.
Publishing a definition identical to the latest version of its name publishes nothing new.
"""
from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from ml_service.config import Settings
from ml_service.pipelines.definition import Pipeline, PipelineError, parse_pipeline
from ml_service.pipelines.reuse import digest_text
from ml_service.workspace import tracking

EXPERIMENT = "mlops-published-pipelines"
DEFINITION = "pipeline.yml"


@dataclass(frozen=True)
class Published:
    """One published version of a pipeline."""

    name: str
    version: int
    id: str
    digest: str
    created: int
    default: bool
    new: bool = False
    project: str = ""


def _store(settings: Settings):
    client = tracking.connect(settings)
    return client, tracking.ensure_experiment(client, settings, EXPERIMENT)


def _versions(client, experiment_id: str, name: str | None = None) -> list[Published]:
    experiment = client.get_experiment(experiment_id)
    query = "tags.`mlops.kind` = 'published_pipeline'"
    if name:
        query += f" and tags.`mlops.pipeline.name` = '{name}'"
    runs = client.search_runs([experiment_id], filter_string=query, max_results=5000)
    found = []
    for run in runs:
        run_name = run.data.tags["mlops.pipeline.name"]
        version = int(run.data.tags["mlops.pipeline.version"])
        default = experiment.tags.get(f"default.{run_name}") == str(version)
        found.append(Published(run_name, version, run.info.run_id, run.data.tags.get("mlops.pipeline.digest", ""),
                               run.info.start_time, default, project=run.data.tags.get("mlops.model.project", "")))
    return sorted(found, key=lambda p: (p.name, p.version))


def publish(settings: Settings, pipeline: Pipeline, make_default: bool = True) -> Published:
    """Record pipeline as the next version of its name (or return the identical latest one).

    Under the workspace's registration lock: two publishes at once never both take the same version.
    """
    from ml_service.workspace.promotion import registry_lock

    context = {"tracking_uri": settings.tracking_uri, "state_dir": str(settings.state_dir)}
    with registry_lock(context, f"published-pipeline-{pipeline.name}", settings=settings):
        return _publish(settings, pipeline, make_default)


def _publish(settings: Settings, pipeline: Pipeline, make_default: bool) -> Published:
    client, experiment_id = _store(settings)
    digest = digest_text(pipeline.source)
    versions = _versions(client, experiment_id, pipeline.name)
    if versions and versions[-1].digest == digest:
        latest = versions[-1]
        if make_default and not latest.default:
            client.set_experiment_tag(experiment_id, f"default.{pipeline.name}", str(latest.version))
        return Published(latest.name, latest.version, latest.id, digest, latest.created,
                         make_default or latest.default, project=latest.project)
    version = versions[-1].version + 1 if versions else 1
    run = client.create_run(experiment_id, run_name=f"{pipeline.name} v{version}", tags={
        "mlops.kind": "published_pipeline",
        "mlops.pipeline.name": pipeline.name,
        "mlops.pipeline.version": str(version),
        "mlops.pipeline.digest": digest,
        "mlops.model.project": settings.project if settings.models else "",
        "mlflow.note.content": pipeline.description,
    })
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / DEFINITION
        path.write_text(pipeline.source)
        client.log_artifact(run.info.run_id, str(path))
    client.set_terminated(run.info.run_id, "FINISHED")
    if make_default or not versions:
        client.set_experiment_tag(experiment_id, f"default.{pipeline.name}", str(version))
    return Published(pipeline.name, version, run.info.run_id, digest, run.info.start_time,
                     make_default or not versions, new=True, project=settings.project if settings.models else "")


def list_published(settings: Settings) -> list[Published]:
    """Every published version of every pipeline."""
    client, experiment_id = _store(settings)
    return _versions(client, experiment_id)


def load_published(settings: Settings, name: str, version: int | None = None) -> tuple[Pipeline, Published]:
    """The definition of name at version (default: the default version)."""
    client, experiment_id = _store(settings)
    versions = _versions(client, experiment_id, name)
    if not versions:
        raise PipelineError(f"no published pipeline named '{name}' (see `mlops pipeline list`)")
    if version is None:
        chosen = next((p for p in versions if p.default), versions[-1])
    else:
        chosen = next((p for p in versions if p.version == version), None)
        if chosen is None:
            have = ", ".join(str(p.version) for p in versions)
            raise PipelineError(f"pipeline '{name}' has no version {version} (published: {have})")
    with tempfile.TemporaryDirectory() as tmp:
        path = client.download_artifacts(chosen.id, DEFINITION, tmp)
        text = Path(path).read_text()
    return parse_pipeline(text, f"published pipeline {name} v{chosen.version}"), chosen
