"""The MLflow run of a batch job (experiment `mlops-batch`): model name and version, input and its digest,
row counts, duration and rows/s. A resumed job continues the run it started. Recorded through a run store
(workspace/run_store.py): MLflow's, by the job's MLflow process (recorder.py), or, in the embedded workspace,
the sqlite fast path, by the job's own process (light_recorder.py: the same rows, without importing MLflow);
never by the scoring processes. recording.py chooses."""
from __future__ import annotations

EXPERIMENT = "mlops-batch"


def run_name(manifest: dict) -> str:
    """The run's name."""
    return f"batch: {manifest['model_name']} v{manifest['model_version']}"


def tags(settings, manifest: dict) -> dict[str, str]:
    """The run's tags (MLflow adds mlflow.runName)."""
    return {"mlops.kind": "batch", "model_name": manifest["model_name"],
            "model_version": str(manifest["model_version"]), "mlops.model.project": settings.project}


def params(manifest: dict, spec) -> dict[str, str]:
    """The run's parameters, as text."""
    values = {"model": spec.model, "model_name": manifest["model_name"], "model_version": manifest["model_version"],
              "input": str(spec.input), "input_digest": manifest["input_digest"], "output": str(spec.output),
              "workers": spec.workers, "chunk_rows": spec.chunk_rows,
              "max_reject_fraction": spec.max_reject_fraction, **getattr(spec, "extra_params", {})}
    return {key: str(value) for key, value in values.items()}


def metrics(totals: dict, seconds: float, scored_now: int) -> dict[str, float]:
    """The run's metrics: row counts (all attempts), this attempt's duration and rate."""
    values = {"rows_in": totals["rows"], "rows_scored": totals["scored"], "rows_rejected": totals["rejected"],
              "duration_s": seconds, "rows_per_s": scored_now / seconds if seconds > 0 else 0.0}
    return {key: float(value) for key, value in values.items()}


def start(store, settings, manifest: dict, spec) -> str | None:
    """The job's run id in store (a workspace.run_store.RunStore): the one in the manifest (reopened), or a new
    run with the job's parameters; None when the store leaves the experiment to MLflow's own decision."""
    run_id = manifest.get("run_id")
    if run_id and store.reopen_run(run_id):
        return run_id  # else the run is gone (another workspace): start a new one
    experiment = store.ensure_experiment(EXPERIMENT)
    if experiment is None:
        return None
    return store.start_run(experiment[0], run_name(manifest), tags(settings, manifest), params(manifest, spec))


def finish(store, run_id: str, totals: dict, seconds: float, scored_now: int, failed: bool) -> None:
    """Log the counts, duration and rate, then end the run (FAILED when the job failed)."""
    import time

    store.log_metrics(run_id, metrics(totals, seconds, scored_now), int(time.time() * 1000))
    store.end_run(run_id, "FAILED" if failed else "FINISHED")
