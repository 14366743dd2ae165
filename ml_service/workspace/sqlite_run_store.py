"""The sqlite fast path as a `RunStore`: MLflow's own rows in the embedded store, without importing MLflow.

Made only by run_store.open_run_store, for a store `LightStore.open` accepts (an embedded sqlite store of a
schema revision light_store.KNOWN_REVISIONS lists). Reads and finished runs are light_store's, runs that live
while a job works are light_runs'; each write is one transaction.
"""
from __future__ import annotations

from ml_service.config import Settings
from ml_service.workspace import light_runs
from ml_service.workspace.light_store import LightStore, RunRow
from ml_service.workspace.refs import ModelRef


class SqliteRunStore:
    """A RunStore over a LightStore connection."""

    imports_mlflow = False

    def __init__(self, store: LightStore, settings: Settings):
        self.store, self.settings = store, settings

    def find_experiment(self, name: str) -> tuple[str, str] | None:
        """(id, artifact location) of the active experiment name, or None."""
        return self.store.experiment(name)

    def ensure_experiment(self, name: str) -> tuple[str, str] | None:
        """(id, artifact location) of experiment name, created under the artifact root; None: ask MLflow."""
        return light_runs.experiment(self.store, name, (self.settings.artifact_root / name).as_uri())

    def start_run(self, experiment_id: str, name: str, tags: dict[str, str], params: dict[str, str]) -> str:
        """A new RUNNING run with tags and params; its id."""
        location = self.store.artifact_location(experiment_id)
        return light_runs.start_run(self.store, experiment_id, location, name, tags, params)

    def reopen_run(self, run_id: str) -> bool:
        """Set an active run RUNNING again; False when there is no such active run."""
        return light_runs.reopen_run(self.store, run_id)

    def log_metrics(self, run_id: str, metrics: dict[str, float], timestamp: int) -> None:
        """Log each metric at step 0 and timestamp; LookupError when the run is not active."""
        light_runs.log_metrics(self.store, run_id, metrics, timestamp)

    def end_run(self, run_id: str, status: str) -> None:
        """End an active run with status, now; LookupError when it is not active."""
        light_runs.end_run(self.store, run_id, status)

    def find_run(self, experiment_id: str, tags: dict[str, str]) -> tuple[str, str] | None:
        """(run id, artifact URI) of the newest active FINISHED run with all these tags."""
        return self.store.find_run(experiment_id, tags)

    def finished_run_tags(self, experiment_id: str, tags: dict[str, str]) -> list[dict[str, str]]:
        """All tags of each active FINISHED run with all these tags, oldest first."""
        return self.store.finished_run_tags(experiment_id, tags)

    def run_tags(self, run_id: str) -> dict[str, str]:
        """All tags of a run."""
        return self.store.run_tags(run_id)

    def alias(self, model_name: str, alias: str) -> tuple[str, dict[str, str]] | None:
        """(version, its tags) holding alias, or None."""
        return self.store.alias(model_name, alias)

    def traced_version(self, ref: ModelRef, experiment: str) -> tuple[str, str] | None:
        """(version, storage location) of a READY version traced to experiment; None: ask MLflow."""
        return self.store.traced_version(ref, experiment)

    def record(self, experiment_id: str, runs: list[RunRow], found_by: str) -> list[str]:
        """End orphans, then write finished runs in one transaction; their ids (the rows' own)."""
        self.store.record(experiment_id, self.store.artifact_location(experiment_id), runs, found_by)
        return [run.run_id for run in runs]

    def close(self) -> None:
        """Close the connection."""
        self.store.close()

    def __enter__(self) -> "SqliteRunStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
