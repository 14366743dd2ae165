"""Run a project's study: check everything first (the search space, the tuned step, the storage), then search.

Used by `mlops tune` (the study's MLflow run is a new run of the project's experiment) and by a pipeline's
`tune` step (the study's run is the step's own run, so the trials nest under the pipeline run).
"""
from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

from ml_service import identity
from ml_service.tune import SpaceError, TuneError
from ml_service.tune.space import Tuning, load_tuning
from ml_service.tune.trials import Recorder, Target, on_path

INSTALL = "pip install -e '.[tune]'   (optuna, pinned in pyproject.toml)"


def target_step(settings, tuning: Tuning) -> Target:
    """The step the study tunes, from the project's pipeline: its function, resolved params and input files."""
    from ml_service.pipelines.definition import load_pipeline

    pipeline = load_pipeline(settings.pipeline_file).with_builtins(settings.model.builtin_params(settings.root))
    step = next((s for s in pipeline.steps if s.name == tuning.step), None)
    where = f"{settings.pipeline_file}"
    if step is None:
        raise SpaceError(f"{where}: no step {tuning.step!r} to tune ({tuning.source}: tuning.step); "
                         f"steps: {', '.join(s.name for s in pipeline.steps)}")
    inputs = {}
    for name, spec in step.inputs.items():
        if spec.kind != "path":
            raise SpaceError(f"{where}: steps.{step.name}.inputs.{name}: a tuned step takes files only "
                             f"(not a {spec.kind} input)")
        value = str(pipeline.resolve(spec.value))
        path = Path(value) if Path(value).is_absolute() else settings.root / value
        if not path.exists():
            raise SpaceError(f"{where}: steps.{step.name}.inputs.{name}: {path} not found")
        inputs[name] = str(path)
    if "data" not in inputs:
        raise SpaceError(f"{where}: steps.{step.name}: tuning needs its data as an input named 'data'")
    params = {k: pipeline.resolve(v) for k, v in step.params.items()}
    return Target(step.function, params, inputs, step.name)


def _context(settings, target: Target) -> dict:
    return {"tracking_uri": settings.tracking_uri, "experiment_name": settings.experiment,
            "model_name": settings.model_name, "project": settings.project, "task": settings.model.task,
            "target": str(target.params.get("target") or settings.model.target), "state_dir": str(settings.state_dir),
            "tuning": True}


def _start_run(client, experiment_id: str, settings, name: str, storage, trials: int, workers: int,
               timeout: float | None, tuning: Tuning) -> str:
    from mlflow.entities import Param

    run = client.create_run(experiment_id, run_name=f"tune {name}", tags={
        "mlops.kind": "tune", "mlops.tune.study": name, "mlops.tune.storage": storage.shown,
        "mlops.model.project": settings.project, **identity.run_user_tags(settings)})
    params = {"study": name, "trials": trials, "workers": workers, "timeout_s": timeout or 0,
              "metric": tuning.metric, "direction": tuning.direction,
              "search_space": json.dumps(tuning.raw, sort_keys=True)}
    client.log_batch(run.info.run_id, params=[Param(k, str(v)[:6000]) for k, v in params.items()])
    return run.info.run_id


def run_study(settings, *, trials: int | None = None, workers: int = 1, timeout: float | None = None,
              name: str | None = None, parent_run_id: str | None = None, target: Target | None = None,
              say=print) -> dict:
    """Prepare and run (or resume) the project's study; the best trial ({"params", "value", "number"}, or None)
    with the study's name and counts."""
    from ml_service.pipelines.reuse import digest_path
    from ml_service.tune.storage import storage_for
    from ml_service.tune.study import StudyPlan, finished, open_study, record_best, run_workers, study_name, \
        tuning_data

    tuning = load_tuning(settings.parameters_file)
    target = target or target_step(settings, tuning)
    trials = trials or tuning.trials
    if trials < 1 or workers < 1 or (timeout is not None and timeout <= 0):
        raise SpaceError("--trials and --workers must be at least 1, --timeout above 0")
    try:
        import optuna  # noqa: F401
    except ImportError:
        raise TuneError(f"tuning needs optuna; install it with: {INSTALL}") from None
    storage = storage_for(settings)
    name = name or study_name(settings.project, tuning, digest_path(Path(target.inputs["data"])))
    from ml_service.workspace.tracking import connect, ensure_experiment

    client = connect(settings)
    experiment_id = ensure_experiment(client, settings)
    own_run = parent_run_id is None
    parent = parent_run_id or _start_run(client, experiment_id, settings, name, storage, trials, workers, timeout,
                                         tuning)
    recorder = Recorder(settings, parent, experiment_id, name)
    recorder.client = client
    started = time.monotonic()
    try:
        with tempfile.TemporaryDirectory(prefix="mlops-tune-") as workdir:
            context = _context(settings, target)
            on_path(settings.root)
            data, counts = tuning_data(target, Path(target.inputs["data"]), Path(workdir), context)
            plan = StudyPlan(settings, tuning, target, storage, name, str(data), trials,
                             time.time() + timeout if timeout else None, Recorder(settings, parent, experiment_id,
                                                                                  name), context)
            study = open_study(plan, create=True)
            before = finished(study)
            say(f"study {name} ({storage.kind}: {storage.shown}): {before} of {trials} trials finished; "
                f"{tuning.metric} ({tuning.direction}) on {counts['tuning_rows']:,} rows "
                f"({counts['held_out']:,} held-out rows left out), {workers} worker(s)")
            ran = run_workers(plan, workers, say) if before < trials else 0
            found = record_best(recorder, study, tuning)
    except BaseException:
        if own_run:
            client.set_terminated(parent, "FAILED")
        raise
    if own_run:
        client.set_terminated(parent, "FINISHED")
    done = finished(study)
    seconds = time.monotonic() - started
    if found is None:
        raise TuneError(f"study {name}: no trial completed ({done} finished, see the MLflow run {parent})")
    say(f"best: trial {found['number']}: " + ", ".join(f"{k}={v}" for k, v in found["params"].items())
        + f" -> {tuning.metric} {found['value']:.6g} ({ran} trial(s) run now in {seconds:.1f}s, {done} finished "
        f"in all); MLflow run {parent}")
    return {**found, "study": name, "ran": ran, "finished": done, "run_id": parent, "seconds": seconds,
            "metric": tuning.metric}
