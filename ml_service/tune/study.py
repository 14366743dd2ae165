"""A study: prepared once (the search space checked, the tuning data made, the study created or loaded from the
workspace's database, an MLflow run opened), then searched by one or more worker processes, each running trials
until the study has `trials` finished ones (COMPLETE or PRUNED, whoever ran them: other workers, other machines,
an earlier run of the same study) or the timeout passes. Rerunning resumes: finished trials count.

Optuna's RDB storage gives each trial its number (no number twice, whichever worker asks); each worker sends
heartbeats while its trial runs, and a trial whose worker died (no heartbeat for two intervals) is marked FAIL by
the next worker that starts a trial, which also ends the trial's MLflow run (KILLED).

The study's name is `<project>-<digest of the space and metric>-<digest of the data>[:12]`: the same space on
the same data is the same study; a new data version or space starts a new one.
"""
from __future__ import annotations

import json
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from ml_service.tune import TuneError
from ml_service.tune.space import Tuning
from ml_service.tune.storage import Storage, open_storage
from ml_service.tune.trials import Recorder, Target, objective, on_path

MAX_FAILURES_IN_A_ROW = 3
EXPERIMENT_TAG = "mlops.kind"


@dataclass
class StudyPlan:
    """Everything a worker needs to join the study (picklable: workers are spawned processes)."""

    settings: object
    tuning: Tuning
    target: Target
    storage: Storage
    study_name: str
    data: str                       # the tuning data (the held-out rows removed)
    trials: int
    deadline: float | None          # time.time() after which no trial starts
    recorder: Recorder
    context: dict = field(default_factory=dict)


def study_name(project: str, tuning: Tuning, data_digest: str) -> str:
    """The default study name of a project's space on a data version."""
    return f"{project}-{tuning.digest}-{data_digest[:12]}"


def _sampler_and_pruner(tuning: Tuning, worker: int):
    import optuna

    seed = None if tuning.seed is None else tuning.seed + worker
    sampler = optuna.samplers.TPESampler(seed=seed)
    pruner = optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=1) if tuning.pruner == "median" \
        else optuna.pruners.NopPruner()
    return sampler, pruner


def _failed_stale(recorder: Recorder):
    """Optuna's callback for a trial failed because its worker stopped: end its MLflow run too."""
    def callback(study, trial) -> None:
        run_id = trial.user_attrs.get("mlflow_run_id") or recorder.find_trial_run(trial.number)
        if run_id:
            why = f"worker {trial.user_attrs.get('worker')} stopped sending heartbeats during the trial"
            recorder.end_trial(run_id, "KILLED", error=f"{why}; the trial is FAIL")
    return callback


def open_study(plan: StudyPlan, worker: int = 0, create: bool = False):
    """The study in the plan's storage (created if asked and missing)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = open_storage(plan.storage, plan.tuning.heartbeat_seconds, _failed_stale(plan.recorder))
    sampler, pruner = _sampler_and_pruner(plan.tuning, worker)
    if create:
        return optuna.create_study(study_name=plan.study_name, storage=storage, direction=plan.tuning.direction,
                                   sampler=sampler, pruner=pruner, load_if_exists=True)
    return optuna.load_study(study_name=plan.study_name, storage=storage, sampler=sampler, pruner=pruner)


def finished(study) -> int:
    """How many trials of the study are COMPLETE or PRUNED."""
    from optuna.trial import TrialState

    return len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)))


def work(plan: StudyPlan, worker: int = 0, say=print) -> int:
    """One worker: run trials until the study has plan.trials finished ones or the deadline passes; the
    number of trials this worker ran. A TuneError after MAX_FAILURES_IN_A_ROW failed trials of its own."""
    on_path(plan.settings.root)
    study = open_study(plan, worker)
    ran = failures = 0
    while (plan.deadline is None or time.time() < plan.deadline) and finished(study) < plan.trials:
        outcome: dict = {}
        study.optimize(lambda trial: objective(trial, plan.tuning, plan.target, Path(plan.data), plan.recorder,
                                               plan.context, outcome),
                       n_trials=1, catch=(Exception,), gc_after_trial=False)
        if not outcome:  # the objective did not start (the storage refused the trial)
            raise TuneError("the study's storage did not start a trial")
        ran += 1
        say(_line(study, outcome, plan.tuning))
        failures = failures + 1 if outcome["state"] == "FAIL" else 0
        if failures >= MAX_FAILURES_IN_A_ROW:
            raise TuneError(f"{failures} trials in a row failed; the last: {outcome['error']}")
    return ran


def _line(study, outcome: dict, tuning: Tuning) -> str:
    """What a trial did, in one line."""
    if outcome["state"] == "COMPLETE":
        values = ", ".join(f"{k}={_short(v)}" for k, v in outcome["values"].items())
        return f"  trial {outcome['number']}: {values} -> {tuning.metric} {outcome['value']:.6g}"
    return f"  trial {outcome.get('number', '?')} {outcome['state'].lower()}" + \
        (f": {outcome['error']}" if outcome.get("error") else "")


def _short(value) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def _spawned(plan: StudyPlan, worker: int, results) -> None:
    """A spawned worker process: run, then report (ran, error) to the parent."""
    try:
        results.put((worker, work(plan, worker), ""))
    except Exception as exc:  # reported by the parent, which decides the exit code
        results.put((worker, 0, f"{type(exc).__name__}: {exc}"))


def run_workers(plan: StudyPlan, workers: int, say=print) -> int:
    """Run the plan in this process (1 worker) or in `workers` spawned processes; trials run here."""
    if workers <= 1:
        return work(plan, 0, say)
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    processes = [context.Process(target=_spawned, args=(plan, i, results), name=f"mlops-tune-{i}")
                 for i in range(workers)]
    for process in processes:
        process.start()
    for process in processes:
        process.join()
    reports = [results.get() for process in processes if process.exitcode == 0]
    errors = [e for _, _, e in reports if e]
    errors += [f"worker {i} died (exit {p.exitcode})" for i, p in enumerate(processes) if p.exitcode != 0]
    if errors and not any(ran for _, ran, _ in reports):
        raise TuneError("; ".join(errors))
    for error in errors:
        say(f"  a worker stopped: {error}")
    return sum(ran for _, ran, _ in reports)


def best(study) -> tuple[dict, float, int] | None:
    """(parameters, value, number) of the study's best trial, or None before one completed."""
    from optuna.trial import TrialState

    if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        return None
    trial = study.best_trial
    return dict(trial.params), float(trial.value), trial.number


def record_best(recorder: Recorder, study, tuning: Tuning) -> dict | None:
    """Log the best trial on the study's run (params best.NAME, metric best_METRIC, its number); the best."""
    from mlflow.entities import Metric, Param

    found = best(study)
    if found is None:
        return None
    params, value, number = found
    client = recorder.connect()
    now = int(time.time() * 1000)
    existing = client.get_run(recorder.parent_run_id).data.params
    new = [Param(f"best.{k}", str(v)) for k, v in params.items() if f"best.{k}" not in existing]
    client.log_batch(recorder.parent_run_id, metrics=[Metric(f"best_{tuning.metric}", value, now, 0)], params=new)
    client.set_tag(recorder.parent_run_id, "mlops.tune.best_trial", str(number))
    client.set_tag(recorder.parent_run_id, "mlops.tune.best_params", json.dumps(params, sort_keys=True))
    return {"params": params, "value": value, "number": number}


def tuning_data(target: Target, data: Path, workdir: Path, context: dict) -> tuple[Path, dict]:
    """The data less the rows the target step holds out (it is run once, as the pipeline would run it)."""
    from ml_service.tune.holdout import HELD_OUT, without_held_out

    with tempfile.TemporaryDirectory(prefix="mlops-holdout-") as output:
        from ml_service.tune.trials import load_function

        inputs = {name: Path(path) for name, path in target.inputs.items()}
        try:
            load_function(target.function)(inputs, dict(target.params), Path(output), dict(context))
        except TuneError:
            raise
        except Exception as exc:
            raise TuneError(f"the {target.name} step failed with its current parameters, before any trial: "
                            f"{type(exc).__name__}: {exc}") from None
        counts = without_held_out(data, Path(output) / HELD_OUT, workdir / "tuning_data.csv")
    return workdir / "tuning_data.csv", counts
