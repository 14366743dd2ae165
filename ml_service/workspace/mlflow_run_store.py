"""MLflow's client as a `RunStore`: any tracking URI (a server, a file store, a sqlite store of any schema).

MLflow is imported on first use, not when the store is made, so choosing a store costs nothing. `record`
is not one transaction here (MLflow's client has none) and MLflow makes the run ids, so the rows' own ids
are replaced by MLflow's, and a tag naming an earlier row's id (mlflow.parentRunId) names its new one.
"""
from __future__ import annotations

from ml_service.config import Settings
from ml_service.workspace.light_store import RunRow
from ml_service.workspace.refs import ModelRef

DATA_CONTEXT_TAG = "mlflow.data.context"


class MlflowRunStore:
    """A RunStore over an MlflowClient (made by tracking.connect when first needed)."""

    imports_mlflow = True

    def __init__(self, settings: Settings, client=None):
        self.settings, self._client = settings, client

    @property
    def client(self):
        """The MlflowClient of the workspace."""
        if self._client is None:
            from ml_service.workspace.tracking import connect

            self._client = connect(self.settings)
        return self._client

    def find_experiment(self, name: str) -> tuple[str, str] | None:
        """(id, artifact location) of the active experiment name, or None."""
        experiment = self.client.get_experiment_by_name(name)
        if experiment is None or experiment.lifecycle_stage != "active":
            return None
        return str(experiment.experiment_id), experiment.artifact_location

    def ensure_experiment(self, name: str) -> tuple[str, str] | None:
        """(id, artifact location) of experiment name: restored when deleted, created when missing."""
        from ml_service.workspace.tracking import ensure_experiment

        experiment_id = ensure_experiment(self.client, self.settings, name)
        return str(experiment_id), self.client.get_experiment(experiment_id).artifact_location

    def start_run(self, experiment_id: str, name: str, tags: dict[str, str], params: dict[str, str]) -> str:
        """create_run, then log_batch of the params; the run's id."""
        from mlflow.entities import Param

        run_id = self.client.create_run(experiment_id, run_name=name, tags=tags).info.run_id
        if params:
            self.client.log_batch(run_id, params=[Param(key, str(value)) for key, value in params.items()])
        return run_id

    def reopen_run(self, run_id: str) -> bool:
        """update_run(status="RUNNING"); False when MLflow refuses (the run is gone, or another workspace's)."""
        try:
            self.client.update_run(run_id, status="RUNNING")
        except Exception:  # whatever MLflow raises for a run it cannot reopen: the caller starts a new one
            return False
        return True

    def log_metrics(self, run_id: str, metrics: dict[str, float], timestamp: int) -> None:
        """log_batch of the metrics at step 0 and timestamp."""
        from mlflow.entities import Metric

        self.client.log_batch(run_id, metrics=[Metric(key, value, timestamp, 0) for key, value in metrics.items()])

    def end_run(self, run_id: str, status: str) -> None:
        """set_terminated(run_id, status)."""
        self.client.set_terminated(run_id, status)

    def find_run(self, experiment_id: str, tags: dict[str, str]) -> tuple[str, str] | None:
        """(run id, artifact URI) of the newest active FINISHED run with all these tags (search_runs)."""
        runs = self.client.search_runs([experiment_id], _filter(tags, "FINISHED"),
                                       order_by=["attributes.start_time DESC"], max_results=1)
        return (runs[0].info.run_id, runs[0].info.artifact_uri) if runs else None

    def finished_run_tags(self, experiment_id: str, tags: dict[str, str]) -> list[dict[str, str]]:
        """All tags of each active FINISHED run with all these tags, oldest first (search_runs, every page)."""
        found, token = [], None
        while True:
            page = self.client.search_runs([experiment_id], _filter(tags, "FINISHED"),
                                           order_by=["attributes.start_time ASC"], page_token=token)
            found += [dict(run.data.tags) for run in page]
            token = page.token
            if not token:
                return found

    def run_tags(self, run_id: str) -> dict[str, str]:
        """All tags of a run."""
        return dict(self.client.get_run(run_id).data.tags)

    def alias(self, model_name: str, alias: str) -> tuple[str, dict[str, str]] | None:
        """(version, its tags) holding alias, or None when the model or the alias does not exist."""
        from ml_service.workspace.registry import get_alias

        version = get_alias(self.client, model_name, alias)
        return (str(version.version), dict(version.tags)) if version is not None else None

    def traced_version(self, ref: ModelRef, experiment: str) -> tuple[str, str] | None:
        """(version, storage location) of NAME:VERSION or NAME@ALIAS when it is READY and provenance.check
        traces it to experiment; None when it is missing, not ready, or not traced."""
        from ml_service.workspace import provenance
        from ml_service.workspace.registry import RegistryError, resolve_version

        if ref.version is None and ref.alias is None:
            return None
        try:
            version = resolve_version(self.client, ref)
            if version.status != "READY":
                return None
            provenance.check(self.client, version, experiment, self.settings.tracking_uri)
        except RegistryError:  # not found, or untraced (UntrustedModelError)
            return None
        return str(version.version), self.client.get_model_version_download_uri(version.name, version.version)

    def record(self, experiment_id: str, runs: list[RunRow], found_by: str) -> list[str]:
        """End orphans, then create, log and end each run (parent first); the ids MLflow made."""
        from mlflow.entities import Metric, Param

        from ml_service.workspace import owners
        from ml_service.workspace.tracking import log_inputs

        owners.end_orphans(self.client, [experiment_id], found_by)
        made: dict[str, str] = {}
        for row in runs:
            tags = {key: made.get(value, value) for key, value in row.tags.items()}
            run_id = self.client.create_run(experiment_id, start_time=row.start or None, tags=tags,
                                            run_name=row.name).info.run_id
            made[row.run_id] = run_id
            self.client.log_batch(run_id, metrics=[Metric(key, float(value), row.end, 0)
                                                   for key, value in row.metrics.items()],
                                  params=[Param(key, str(value)) for key, value in row.params.items()])
            if row.datasets:
                log_inputs(self.client, run_id, [_dataset_input(dataset) for dataset in row.datasets])
            self.client.set_terminated(run_id, row.status, end_time=row.end or None)
        return [made[row.run_id] for row in runs]

    def close(self) -> None:
        """Nothing to release (MLflow's client holds no connection of ours)."""

    def __enter__(self) -> "MlflowRunStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _filter(tags: dict[str, str], status: str) -> str:
    """MLflow's filter string for runs with all these tags and status; ValueError for a tag it cannot quote."""
    for key, value in tags.items():
        if "`" in key or "'" in value:
            raise ValueError(f"tag {key!r} = {value!r} cannot be searched for in MLflow's filter syntax")
    return " and ".join([*(f"tags.`{key}` = '{value}'" for key, value in tags.items()),
                         f"attributes.status = '{status}'"])


def _dataset_input(dataset: dict):
    """A RunRow's dataset as MLflow's DatasetInput."""
    from mlflow.entities import Dataset, DatasetInput, InputTag

    entity = Dataset(dataset["name"], dataset["digest"], dataset["source_type"], dataset["source"],
                     dataset.get("schema"), dataset.get("profile"))
    return DatasetInput(entity, tags=[InputTag(DATA_CONTEXT_TAG, dataset.get("context", "training"))])
