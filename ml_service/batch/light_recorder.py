"""The job's run recorded straight into the embedded workspace's sqlite store, in the job's own process.

When the model version was found without MLflow (local_store.py) and the workspace's run store is the sqlite
fast path (workspace/run_store.py chose it), starting and ending the run are a few rows written in
milliseconds, where the MLflow process (recorder.py) would spend about 2 s of CPU importing MLflow, on a
2-core machine taken from the scoring workers. The run is the one MLflow would record (record.py does both,
through the one RunStore interface). Should the store need MLflow's own decision (the batch experiment was
deleted and must be restored, its name is held twice), the MLflow process is started then and records the
run instead.

A recording.BatchRecorder: send() now, receive() the answer (here: already there), or call().
"""
from __future__ import annotations

import sqlite3
from collections import deque

from ml_service.batch import BatchError, record


class LightRecorder:
    """start / finish of the job's run in a RunStore that needs no MLflow (the MLflow process only when the store
    leaves a decision to MLflow)."""

    def __init__(self, store, settings):
        self.store, self.settings = store, settings
        self.answers: deque = deque()
        self.mlflow = None  # recorder.Recorder, once the store needs MLflow

    def _start(self, manifest: dict, spec) -> str | None:
        return record.start(self.store, self.settings, manifest, spec)

    def _finish(self, run_id: str, totals: dict, seconds: float, scored_now: int, failed: bool) -> None:
        record.finish(self.store, run_id, totals, seconds, scored_now, failed)

    def send(self, name: str, *args) -> None:
        """Do name(*args) ("start" or "finish") now; its answer is read by receive()."""
        if self.mlflow is not None:
            self.answers.append(("mlflow", None))
            self.mlflow.send(name, *args)
            return
        try:
            answer = self._start(*args) if name == "start" else self._finish(*args)
        except (sqlite3.Error, LookupError) as exc:
            self.answers.append(("error", f"MLflow store {self.settings.tracking_uri}: {type(exc).__name__}: {exc}"))
            return
        if name == "start" and answer is None:  # the store needs MLflow's own decision
            from ml_service.batch.recorder import Recorder

            self.mlflow = Recorder(self.settings)
            self.send(name, *args)
            return
        self.answers.append(("ok", answer))

    def answered(self) -> bool:
        """True when an answer is waiting to be received."""
        if self.answers and self.answers[0][0] == "mlflow":
            return self.mlflow.answered()
        return bool(self.answers)

    def receive(self):
        """The answer to the oldest request not read yet; a BatchError when it failed."""
        status, value = self.answers.popleft()
        if status == "mlflow":
            return self.mlflow.receive()
        if status != "ok":
            raise BatchError(value)
        return value

    def call(self, name: str, *args):
        """name(*args), its answer."""
        self.send(name, *args)
        return self.receive()

    def close(self) -> None:
        """Close the store (and the MLflow process, if it was needed)."""
        if self.mlflow is not None:
            self.mlflow.close()
        self.store.close()

    def __enter__(self) -> "LightRecorder":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
