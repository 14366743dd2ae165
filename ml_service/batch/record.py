"""The MLflow run of a batch job (experiment `mlops-batch`): model name and version, input and its digest,
row counts, duration and rows/s. A resumed job continues the run it started. Recorded through MLflow by the
job's MLflow process (recorder.py), or, in the embedded workspace, straight into its sqlite store by the job's
own process (light_recorder.py: the same rows, without importing MLflow); never by the scoring processes."""
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


def start(client, settings, manifest: dict, spec) -> str:
    """The job's run id: the one in the manifest (reopened), or a new run with the job's parameters."""
    from mlflow.entities import Param

    from ml_service.workspace.tracking import ensure_experiment

    run_id = manifest.get("run_id")
    if run_id:
        try:
            client.update_run(run_id, status="RUNNING")
            return run_id
        except Exception:  # the run is gone (another workspace): start a new one
            pass
    experiment = ensure_experiment(client, settings, EXPERIMENT)
    run = client.create_run(experiment, run_name=run_name(manifest), tags=tags(settings, manifest))
    client.log_batch(run.info.run_id, params=[Param(key, value) for key, value in params(manifest, spec).items()])
    return run.info.run_id


def finish(client, run_id: str, totals: dict, seconds: float, scored_now: int, failed: bool) -> None:
    """Log the counts, duration and rate, then end the run (FAILED when the job failed)."""
    import time

    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    client.log_batch(run_id, metrics=[Metric(key, value, now, 0)
                                      for key, value in metrics(totals, seconds, scored_now).items()])
    client.set_terminated(run_id, "FAILED" if failed else "FINISHED")
