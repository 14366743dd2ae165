"""Batch scoring: a registered model version over a CSV or Parquet file (or a folder of parts), in
parallel worker processes, resumable chunk by chunk, with rejected rows kept and the job recorded in MLflow.

Modules: source (read the input in chunks), convert (check rows against the model's input schema),
worker (score one chunk, write its Parquet part), manifest (what is done, with digests), job (run a job),
record (its MLflow run, through a workspace.run_store.RunStore), recording (the recorder interface and its
chooser), recorder (MLflow in a process of its own) and light_recorder (the run without MLflow, in the
embedded workspace), progress, commands (`mlops batch score`), step (a pipeline step).
"""
from __future__ import annotations

from ml_service.errors import MLOpsError


class BatchError(MLOpsError):
    """A batch job cannot start, failed, or rejected too many rows; the message is for the user (exit 1)."""
