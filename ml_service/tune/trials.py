"""One trial: the train step's function called in this process with the trial's parameters, on the data less
the held-out rows, measured on the train step's own metric; recorded as a nested MLflow run of the study's run.

The step function gets `context["report"]`, a callable `report(step, value)`: a training loop that calls it
with an intermediate value of the metric (e.g. after each epoch) lets the study prune a trial that falls behind
(it raises optuna.TrialPruned, which the function lets through).
"""
from __future__ import annotations

import importlib
import os
import socket
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from ml_service.tune import TuneError

STATE_TAG = "mlops.tune.state"
STUDY_TAG = "mlops.tune.study"
TRIAL_TAG = "mlops.tune.trial"


@dataclass(frozen=True)
class Target:
    """The step a study tunes: its function, its parameters (the pipeline's values) and input files."""

    function: str
    params: dict
    inputs: dict                  # name -> path (text); "data" is replaced by the tuning data
    name: str = "train"


@dataclass
class Recorder:
    """The study's MLflow run and its nested trial runs."""

    settings: object
    parent_run_id: str
    experiment_id: str
    study: str
    client: object = field(default=None, repr=False)

    def connect(self):
        """The MLflow client (made once per process)."""
        if self.client is None:
            from ml_service.workspace.tracking import connect

            self.client = connect(self.settings)
        return self.client

    def start_trial(self, number: int, values: dict) -> str:
        """A nested run for trial number with its parameters; its id."""
        from mlflow.entities import Param

        client = self.connect()
        run = client.create_run(self.experiment_id, run_name=f"trial {number}", tags={
            "mlflow.parentRunId": self.parent_run_id, "mlops.kind": "trial", STUDY_TAG: self.study,
            TRIAL_TAG: str(number), "mlops.tune.worker": worker_name(), STATE_TAG: "RUNNING"})
        client.log_batch(run.info.run_id, params=[Param(k, str(v)) for k, v in values.items()])
        return run.info.run_id

    def find_trial_run(self, number: int) -> str | None:
        """The RUNNING run of trial number (a worker killed before it noted the run's id on the trial)."""
        client = self.connect()
        runs = client.search_runs([self.experiment_id], f"tags.`{STUDY_TAG}` = '{self.study}' and "
                                  f"tags.`{TRIAL_TAG}` = '{number}' and attributes.status = 'RUNNING'", max_results=1)
        return runs[0].info.run_id if runs else None

    def intermediate(self, run_id: str, metric: str, step: int, value: float) -> None:
        """An intermediate value of the metric, at its step."""
        self.connect().log_metric(run_id, f"intermediate_{metric}", float(value), step=int(step))

    def end_trial(self, run_id: str, state: str, metrics: dict | None = None, error: str = "") -> None:
        """The trial's metrics and state (COMPLETE, PRUNED, FAIL); the run ends FINISHED, or FAILED/KILLED."""
        from mlflow.entities import Metric

        client = self.connect()
        now = int(time.time() * 1000)
        numbers = {k: float(v) for k, v in (metrics or {}).items()
                   if isinstance(v, (int, float)) and not isinstance(v, bool)}
        if numbers:
            client.log_batch(run_id, metrics=[Metric(k, v, now, 0) for k, v in numbers.items()])
        client.set_tag(run_id, STATE_TAG, state)
        if error:
            client.set_tag(run_id, "mlops.tune.error", error[:5000])
        client.set_terminated(run_id, {"COMPLETE": "FINISHED", "PRUNED": "FINISHED", "FAIL": "FAILED"}.get(state,
                                                                                                           "KILLED"))


def worker_name() -> str:
    """host:pid of this worker."""
    return f"{socket.gethostname()}:{os.getpid()}"


def on_path(root) -> None:
    """Put the repository root on sys.path: the model projects' packages, as `python -m` from there finds them."""
    import sys

    if str(root) not in sys.path:
        sys.path.insert(0, str(root))


def load_function(function: str):
    """The callable named 'package.module:function'."""
    module, _, name = function.partition(":")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        raise TuneError(f"cannot load the step function {function!r}: {exc}") from None


def call_step(target: Target, params: dict, data: Path, context: dict) -> dict:
    """Call the target step's function on data with params, in a temporary output folder; its result."""
    inputs = {name: Path(path) for name, path in target.inputs.items()}
    inputs["data"] = Path(data)
    with tempfile.TemporaryDirectory(prefix="mlops-trial-") as output:
        result = load_function(target.function)(inputs, params, Path(output), context)
    return result or {}


def objective(trial, tuning, target: Target, data: Path, recorder: Recorder, context: dict, outcome: dict) -> float:
    """Run one trial (Optuna's objective); outcome["error"] says why the last one failed."""
    import optuna

    values = tuning.suggest(trial)
    outcome["number"] = trial.number
    trial.set_user_attr("worker", worker_name())
    run_id = recorder.start_trial(trial.number, values)
    trial.set_user_attr("mlflow_run_id", run_id)

    def report(step: int, value: float) -> None:
        trial.report(float(value), int(step))
        recorder.intermediate(run_id, tuning.metric, step, value)
        if trial.should_prune():
            raise optuna.TrialPruned(f"pruned at step {step} ({tuning.metric} {value:.6g})")

    try:
        result = call_step(target, {**target.params, **values}, data,
                           {**context, "report": report, "trial": trial.number})
        metrics = result.get("metrics") or {}
        if tuning.metric not in metrics:
            raise TuneError(f"the {target.name} step returned no metric {tuning.metric!r} "
                            f"(it returned: {', '.join(sorted(metrics)) or 'none'})")
        value = float(metrics[tuning.metric])
    except optuna.TrialPruned:
        recorder.end_trial(run_id, "PRUNED")
        outcome.update(state="PRUNED", error="")
        raise
    except Exception as exc:
        outcome.update(state="FAIL", error=f"{type(exc).__name__}: {exc}")
        recorder.end_trial(run_id, "FAIL", error=outcome["error"])
        raise
    recorder.end_trial(run_id, "COMPLETE", metrics)
    outcome.update(state="COMPLETE", error="", value=value, values=values)
    return value
