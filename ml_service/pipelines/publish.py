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
    user: str = ""  # who published it (on a team server: the user the server authenticated)


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
                               run.info.start_time, default, project=run.data.tags.get("mlops.model.project", ""),
                               user=str(run.info.user_id or "")))
    return sorted(found, key=lambda p: (p.name, p.version))


def publish(settings: Settings, pipeline: Pipeline, make_default: bool = True) -> Published:
    """Record pipeline as the next version of its name (or return the identical latest one).

    Under the project's registration lock: two publishes at once never both take the same version. On a team server
    that lock is the project's `mlops-lock.<model>`, which `mlops workspace up` makes the admin's and grants to the
    project's writers; a lock of the pipeline's own name would be a registered model any user could create first and
    hold for ever (a reader blocking every publish).
    """
    from ml_service.workspace.promotion import registry_lock

    context = {"tracking_uri": settings.tracking_uri, "state_dir": str(settings.state_dir)}
    lock = settings.model_name if settings.models else f"published-pipeline-{pipeline.name}"
    with registry_lock(context, lock, settings=settings):
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
                         make_default or latest.default, project=latest.project, user=latest.user)
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
                     make_default or not versions, new=True, project=settings.project if settings.models else "",
                     user=str(run.info.user_id or ""))


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
    _check_publisher(settings, client, chosen)
    with tempfile.TemporaryDirectory() as tmp:
        path = client.download_artifacts(chosen.id, DEFINITION, tmp)
        text = Path(path).read_text()
    return parse_pipeline(text, f"published pipeline {name} v{chosen.version}"), chosen


def _check_publisher(settings: Settings, client, chosen: Published) -> None:
    """Refuse a published version whose publisher may not write the experiment of the project it runs as.

    A definition names the functions a run calls, with their inputs and params: it is code the platform runs with
    the credentials of whoever runs it. Any team user can create the experiment `mlops-published-pipelines` when it
    does not exist yet (MLflow makes its creator MANAGE it), so who may write that experiment proves nothing; the
    rule is the one a model version's writer meets (workspace/provenance.py): write access to the project."""
    from ml_service.workspace.provenance import untrusted_writer

    project = settings.select(chosen.project) if chosen.project in {m.project for m in settings.models} else settings
    experiment = client.get_experiment_by_name(project.experiment)
    why = untrusted_writer(settings.tracking_uri, chosen.user, experiment.experiment_id) if experiment else ""
    if experiment is None and chosen.user and settings.tracking_uri.startswith(("http://", "https://")):
        why = f"published by {chosen.user!r} while the project's experiment does not exist"
    if why:
        raise PipelineError(f"refusing published pipeline {chosen.name} v{chosen.version}: {why} "
                            f"'{project.experiment}'. Publish it again from a checkout whose user may write it "
                            f"(`mlops pipeline publish`), or run the pipeline file (`mlops pipeline run`)")
