"""One interface to the workspace's runs, and the one place that chooses how they are written.

Two backends sit behind `RunStore`: MLflow's own client (`MlflowRunStore`, any tracking URI) and the
sqlite fast path (`SqliteRunStore`: MLflow's own rows written with the standard library, 2-6 s of
`import mlflow` saved per command). `open_run_store` chooses once, by tracking URI and schema
revision, as MLflow's tracking registry picks a store by scheme: the fast path only for an embedded
sqlite store MLflow finished creating, at a schema revision the fast path was written for
(light_store.KNOWN_REVISIONS); MLflow for anything else. Opening either imports no MLflow; the MLflow
store imports it when first used.
"""
from __future__ import annotations

from typing import Protocol, runtime_checkable

from ml_service.config import Settings
from ml_service.workspace.light_store import RunRow, embedded_database, local_path
from ml_service.workspace.refs import ModelRef

__all__ = ["RunRow", "RunStore", "local_path", "no_store_yet", "open_run_store"]


@runtime_checkable
class RunStore(Protocol):
    """The operations on runs and versions that the pipeline runner's no-op check, a batch job (its model version
    and its run) and the data set registry's `$data` need."""

    imports_mlflow: bool  # False: every operation is a few sqlite rows, worth trying before MLflow

    def find_experiment(self, name: str) -> tuple[str, str] | None:
        """(id, artifact location) of the active experiment name, or None."""

    def ensure_experiment(self, name: str) -> tuple[str, str] | None:
        """(id, artifact location) of experiment name, created under the workspace's artifact root when there
        is none; None when this store leaves the decision to MLflow (a deleted experiment, a name held twice)."""

    def start_run(self, experiment_id: str, name: str, tags: dict[str, str], params: dict[str, str]) -> str:
        """A new RUNNING run with tags and params (and mlflow.runName = name); its id."""

    def reopen_run(self, run_id: str) -> bool:
        """Set an active run RUNNING again; False when there is no such active run."""

    def log_metrics(self, run_id: str, metrics: dict[str, float], timestamp: int) -> None:
        """Log each metric at step 0 and this timestamp (the latest value by step, timestamp, value)."""

    def end_run(self, run_id: str, status: str) -> None:
        """End an active run with status, now; LookupError-like failure when it is not active."""

    def find_run(self, experiment_id: str, tags: dict[str, str]) -> tuple[str, str] | None:
        """(run id, artifact URI) of the newest active FINISHED run that has all these tags."""

    def finished_run_tags(self, experiment_id: str, tags: dict[str, str]) -> list[dict[str, str]]:
        """All tags of each active FINISHED run that has all these tags, oldest first."""

    def run_tags(self, run_id: str) -> dict[str, str]:
        """All tags of a run."""

    def alias(self, model_name: str, alias: str) -> tuple[str, dict[str, str]] | None:
        """(version, its tags) of the model version holding alias, or None."""

    def traced_version(self, ref: ModelRef, experiment: str) -> tuple[str, str] | None:
        """(version, storage location) of NAME:VERSION or NAME@ALIAS when it is READY and its files are those of a
        run of experiment (workspace/provenance.py); None when it is missing, not ready or not traced."""

    def record(self, experiment_id: str, runs: list[RunRow], found_by: str) -> list[str]:
        """End KILLED the runs whose owner died, then write finished runs (parent first); their ids (the rows'
        own where the store keeps them, else the ones it made, with tags naming an earlier row rewritten)."""

    def close(self) -> None:
        """Release the store."""

    def __enter__(self) -> "RunStore":
        """The store itself; closed at the end of the block."""

    def __exit__(self, *exc) -> None:
        """Close the store."""


def open_run_store(settings: Settings) -> RunStore:
    """The run store of settings' workspace: the sqlite fast path for an embedded store of a known schema
    revision, else MLflow's client (imported when first used)."""
    from ml_service.workspace.light_store import LightStore

    store = LightStore.open(settings)
    if store is not None:
        from ml_service.workspace.sqlite_run_store import SqliteRunStore

        return SqliteRunStore(store, settings)
    from ml_service.workspace.mlflow_run_store import MlflowRunStore

    return MlflowRunStore(settings)


def no_store_yet(settings: Settings) -> bool:
    """True when settings' workspace is an embedded sqlite store not created yet: it holds nothing, and asking
    MLflow would create it."""
    database = embedded_database(settings)
    return database is not None and not database.exists()
