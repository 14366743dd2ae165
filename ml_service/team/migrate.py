"""`mlops workspace migrate --to URI`: copy the embedded sqlite workspace into an MLflow server.

MLflow has no such command. What moves: experiments (by name, with tags), every active run with
its params, full metric histories, tags, dataset inputs, artifacts and status; the registered
models with their tags, descriptions, versions (files, tags) and aliases. The server gives new ids,
so lineage is kept as a mapping recorded in tags: each copied run has `mlops.migrated_from` (its old
id) and every tag that named an old run id (the parent run, a version's `run_id`, ...) names the new
one; each version has `mlops.migrated_from_version` and `mlops.migrated_from_run_id`. Running it again
copies only what is not there yet (the tags say what already moved).
"""
from __future__ import annotations

import os
import tempfile
from collections import Counter
from pathlib import Path

from ml_service import env as envvars
from ml_service.config import Settings
from ml_service.errors import MLOpsError, UsageError

FROM_RUN = "mlops.migrated_from"
FROM_VERSION = "mlops.migrated_from_version"
FROM_VERSION_RUN = "mlops.migrated_from_run_id"
PARENT = "mlflow.parentRunId"
BATCH = 500  # metrics per log_batch call (MLflow allows 1000; params 100, tags 100)


class MigrationError(MLOpsError):
    """The migration could not read the source or write the target."""


def _chunks(items: list, size: int):
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _all_runs(client, experiment_id: str, filter_string: str = "") -> list:
    runs, token = [], None
    while True:
        page = client.search_runs([experiment_id], filter_string, max_results=1000, page_token=token)
        runs += list(page)
        token = page.token
        if not token:
            return runs


def _artifact_files(client, run_id: str, path: str = "") -> int:
    return sum(_artifact_files(client, run_id, f.path) if f.is_dir else 1 for f in client.list_artifacts(run_id, path))


def _clients(settings: Settings, to_uri: str, source: str):
    import mlflow

    from ml_service.team import server as team
    from ml_service.workspace import tracking

    source = source or f"sqlite:///{settings.state_dir / 'mlflow.db'}"
    if source.startswith("sqlite:///") and not Path(source[len("sqlite:///"):]).is_file():
        raise UsageError(f"no embedded workspace to migrate: {source[len('sqlite:///'):]} does not exist")
    if not to_uri.startswith(("http://", "https://")):
        raise UsageError(f"--to {to_uri!r}: name the MLflow server's URL (http://HOST:PORT)")
    if source == to_uri:
        raise UsageError("--to names the workspace being migrated")
    if not team.answers(to_uri):
        raise MigrationError(f"the MLflow server {to_uri} does not answer (is it up? `mlops workspace status`)")
    if settings.tracking_uri == to_uri:
        tracking.connect(settings)  # this checkout's server user, for MLflow's client
    if not team.authenticated(to_uri, envvars.MLFLOW_TRACKING_USERNAME.get(), envvars.MLFLOW_TRACKING_PASSWORD.get()):
        raise MigrationError(f"{to_uri} refuses this user: point this checkout at it (`mlops workspace use`) "
                             "or set MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD")
    return mlflow.MlflowClient(source, source), mlflow.MlflowClient(to_uri, to_uri)


def migrate(settings: Settings, to_uri: str, dry_run: bool = False, source: str = "") -> dict[str, int]:
    """Copy (or, dry, count) the source workspace into the server at to_uri; counts of what moved."""
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    src, dst = _clients(settings, to_uri, source)
    counts: Counter = Counter()
    run_ids: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="mlops-migrate-") as tmp:
        for experiment in src.search_experiments():
            runs = _all_runs(src, experiment.experiment_id)
            if not runs and experiment.name == "Default":
                continue
            target = None if dry_run else _experiment(dst, experiment)
            done = {} if target is None else {r.data.tags[FROM_RUN]: r.info.run_id for r in
                                              _all_runs(dst, target, f"tags.`{FROM_RUN}` LIKE '%'")}
            run_ids.update(done)
            counts["experiments"] += any(r.info.run_id not in done for r in runs)
            for run in sorted(runs, key=lambda r: r.info.start_time or 0):
                if run.info.run_id in done:
                    continue
                _count_run(src, run, counts)
                if not dry_run:
                    run_ids[run.info.run_id] = _copy_run(src, dst, run, target, Path(tmp))
            if not dry_run:
                _relink(dst, [run_ids[r.info.run_id] for r in runs if r.info.run_id not in done], run_ids)
        _registry(src, dst, run_ids, counts, dry_run, Path(tmp))
    return {key: counts[key] for key in ("experiments", "runs", "params", "metrics", "tags", "artifacts",
                                         "registered models", "versions", "aliases")}


def _experiment(dst, experiment) -> str:
    found = dst.get_experiment_by_name(experiment.name)
    if found is not None:
        if found.lifecycle_stage == "deleted":
            dst.restore_experiment(found.experiment_id)
        return found.experiment_id
    return dst.create_experiment(experiment.name, tags=dict(experiment.tags))


def _count_run(src, run, counts: Counter) -> None:
    counts["runs"] += 1
    counts["params"] += len(run.data.params)
    counts["tags"] += len(run.data.tags)
    counts["metrics"] += sum(len(src.get_metric_history(run.info.run_id, key)) for key in run.data.metrics)
    counts["artifacts"] += _artifact_files(src, run.info.run_id)


def _copy_run(src, dst, run, experiment_id: str, tmp: Path) -> str:
    from mlflow.entities import Param, RunTag

    old = run.info.run_id
    tags = {k: v for k, v in run.data.tags.items() if k != PARENT}
    created = dst.create_run(experiment_id, start_time=run.info.start_time,
                             tags={**tags, FROM_RUN: old}, run_name=run.info.run_name)
    new = created.info.run_id
    params = [Param(k, v) for k, v in run.data.params.items()]
    for chunk in _chunks(params, 100):
        dst.log_batch(new, params=chunk)
    metrics = [m for key in run.data.metrics for m in src.get_metric_history(old, key)]
    for chunk in _chunks(metrics, BATCH):
        dst.log_batch(new, metrics=chunk)
    if PARENT in run.data.tags:  # relinked to the new parent once every run exists
        dst.log_batch(new, tags=[RunTag(FROM_RUN + ".parent", run.data.tags[PARENT])])
    if run.inputs and run.inputs.dataset_inputs:
        dst.log_inputs(new, datasets=list(run.inputs.dataset_inputs))
    if src.list_artifacts(old):
        import mlflow.artifacts

        local = mlflow.artifacts.download_artifacts(run_id=old, dst_path=str(tmp / old), tracking_uri=src.tracking_uri)
        dst.log_artifacts(new, local)
    if run.info.status != "RUNNING" or run.info.end_time:  # a created run is RUNNING with no end: as it was
        dst.set_terminated(new, run.info.status, end_time=run.info.end_time)
    return new


def _relink(dst, new_ids: list[str], run_ids: dict[str, str]) -> None:
    """Point every tag that names an old run id (the parent run, a source run of a reused step, ...) at the
    new id, so lineage holds on the server."""
    from mlflow.entities import RunTag

    for new in new_ids:
        run = dst.get_run(new)
        changes = []
        for key, value in run.data.tags.items():
            if key == FROM_RUN + ".parent":
                changes.append(RunTag(PARENT, run_ids.get(value, value)))
            elif key != FROM_RUN and value in run_ids:
                changes.append(RunTag(key, run_ids[value]))
        for chunk in _chunks(changes, 100):
            dst.log_batch(new, tags=chunk)
        if FROM_RUN + ".parent" in run.data.tags:
            dst.delete_tag(new, FROM_RUN + ".parent")


def _registry(src, dst, run_ids: dict[str, str], counts: Counter, dry_run: bool, tmp: Path) -> None:
    from mlflow.exceptions import MlflowException

    from ml_service.workspace.server_lock import PREFIX

    for model in src.search_registered_models():
        if model.name.startswith(PREFIX):
            continue
        if dry_run:
            counts["registered models"] += 1
        else:
            try:
                dst.get_registered_model(model.name)
            except MlflowException:
                dst.create_registered_model(model.name, tags=dict(model.tags), description=model.description)
                counts["registered models"] += 1
        versions = {}
        for version in sorted(src.search_model_versions(f"name='{model.name}'"), key=lambda v: int(v.version)):
            moved = None if dry_run else _migrated_version(dst, model.name, str(version.version))
            if moved is None:
                counts["versions"] += 1
                if not dry_run:
                    moved = _copy_version(src, dst, version, run_ids, tmp)
            versions[str(version.version)] = moved
        for alias, version in (model.aliases or {}).items():
            if dry_run:
                counts["aliases"] += 1
                continue
            try:
                current = str(dst.get_model_version_by_alias(model.name, alias).version)
            except MlflowException:
                current = None
            if versions.get(str(version)) and current != versions[str(version)]:
                dst.set_registered_model_alias(model.name, alias, versions[str(version)])
                counts["aliases"] += 1


def _copy_version(src, dst, version, run_ids: dict[str, str], tmp: Path) -> str:
    """Copy one version (its files as a logged model of the copied run); returns its number on the server."""
    import mlflow.artifacts

    name, number = version.name, str(version.version)
    local = mlflow.artifacts.download_artifacts(artifact_uri=src.get_model_version_download_uri(name, number),
                                                dst_path=str(tmp / f"{name}-v{number}"))
    new_run = run_ids.get(version.run_id or "")
    experiment = dst.get_run(new_run).info.experiment_id if new_run else _experiment_for(dst, name)
    logged = dst.create_logged_model(experiment, name=name, source_run_id=new_run,
                                     tags={FROM_VERSION: number, "mlops.registered_model": name})
    dst.log_model_artifacts(logged.model_id, local)
    dst.finalize_logged_model(logged.model_id, "READY")
    tags = {k: run_ids.get(v, v) for k, v in version.tags.items()}
    tags[FROM_VERSION] = number
    if version.run_id:
        tags[FROM_VERSION_RUN] = version.run_id
    created = dst.create_model_version(name, source=f"models:/{logged.model_id}", run_id=new_run, tags=tags,
                                       description=version.description, model_id=logged.model_id)
    return str(created.version)


def _migrated_version(dst, name: str, number: str) -> str | None:
    """The server's number of source version `number` if an earlier migration copied it."""
    already = dst.search_model_versions(f"name='{name}' and tags.`{FROM_VERSION}` = '{number}'")
    return str(already[0].version) if already else None


def _experiment_for(dst, name: str) -> str:
    """An experiment for versions whose run did not move (deleted runs): `<model>-migrated`."""
    found = dst.get_experiment_by_name(f"{name}-migrated")
    return found.experiment_id if found else dst.create_experiment(f"{name}-migrated")
