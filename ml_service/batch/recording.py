"""One interface for recording a batch job's run, and the one place that chooses the recorder.

Two recorders answer the job's requests in the order they were sent: recorder.Recorder (MLflow in a process
of its own: "resolve", "download", "start", "finish") and light_recorder.LightRecorder ("start" and "finish"
straight into the embedded store, in the job's process). `open_recorder` takes the light one only when the
job found its model version without MLflow and the workspace's run store is the sqlite fast path.
"""
from __future__ import annotations

from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class BatchRecorder(Protocol):
    """Requests sent now and answered in order: send(), answered(), receive(), or call() both; close() at the end."""

    def send(self, name: str, *args: Any) -> None:
        """Ask for name(*args); the answer is read by receive()."""

    def answered(self) -> bool:
        """True when an answer is waiting to be received."""

    def receive(self) -> Any:
        """The answer to the oldest request not read yet; a BatchError when it failed."""

    def call(self, name: str, *args: Any) -> Any:
        """name(*args), its answer."""

    def close(self) -> None:
        """Release the recorder (its store, its process)."""

    def __enter__(self) -> "BatchRecorder":
        """The recorder itself; closed at the end of the block."""

    def __exit__(self, *exc: Any) -> None:
        """Close the recorder."""


def open_recorder(settings, found: tuple | None) -> BatchRecorder:
    """The recorder of a job: the light one when its model version was found without MLflow (found is not None)
    and the run store is the sqlite fast path, else the MLflow process (which also resolves and downloads)."""
    if found is not None:
        from ml_service.workspace.run_store import open_run_store

        store = open_run_store(settings)
        if not store.imports_mlflow:
            from ml_service.batch.light_recorder import LightRecorder

            return LightRecorder(store, settings)
        store.close()
    from ml_service.batch.recorder import Recorder

    return Recorder(settings)
