"""`mlops tune` and a pipeline's tune step on the embedded workspace (the study in sqlite beside the MLflow store),
with a tiny project written to a temp root (tests/support/tune_project.py), through the CLI as a user runs it.

Two worker processes share the study (no trial number twice), every trial is a nested MLflow run with its
parameter, state and metric; trials that report intermediate values fall behind and are pruned; rerunning resumes
the study; a malformed search space stops before any trial; the pipeline's train runs with the best trial's value.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ml_service.pipelines.runner import OUTPUTS
from tests.conftest import ROOT
from tests.support.tune_project import write_project

pytestmark = pytest.mark.integration


def env_of(root: Path, state: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLOPS_", "MLFLOW_TRACKING_"))}
    env.update(MLOPS_ROOT=str(root), MLOPS_STATE_DIR=str(state), MLFLOW_DISABLE_TELEMETRY="true",
               PYTHONPATH=os.pathsep.join(filter(None, (str(ROOT), os.environ.get("PYTHONPATH")))))  # this checkout
    return env


def mlops(env: dict, *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ml_service.cli", *args], capture_output=True, text=True,
                          cwd=env["MLOPS_ROOT"], env=env, timeout=timeout)


def study_of(env: dict):
    """The project's one study in the workspace's storage."""
    import optuna

    from ml_service.config import load_settings
    from ml_service.tune.storage import open_storage, storage_for

    storage = open_storage(storage_for(load_settings(env), environ=env), 1)
    names = [s.study_name for s in optuna.get_all_study_summaries(storage)]
    assert len(names) == 1, names
    return optuna.load_study(study_name=names[0], storage=storage)


def trial_runs(env: dict) -> dict:
    """{trial number: MLflow run} of every trial run in the project's experiment."""
    from ml_service.config import load_settings
    from ml_service.workspace.tracking import connect

    settings = load_settings(env)
    client = connect(settings)
    experiment = client.get_experiment_by_name(settings.experiment)
    runs = client.search_runs([experiment.experiment_id], "tags.`mlops.kind` = 'trial'", max_results=1000)
    return {int(r.data.tags["mlops.tune.trial"]): r for r in runs}


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tune")
    root = write_project(folder / "root", trials=6)
    return env_of(root, folder / "state")


def test_two_workers_share_one_study_and_every_trial_is_a_nested_mlflow_run(project):
    from optuna.trial import TrialState

    done = mlops(project, "tune", "--workers", "2")
    assert done.returncode == 0, done.stderr[-3000:]
    study = study_of(project)
    trials = study.get_trials(deepcopy=False)
    numbers = [t.number for t in trials]
    assert len(numbers) == len(set(numbers)) and sorted(numbers) == list(range(len(numbers)))
    finished = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert 6 <= len(finished) <= 7  # each worker checks the count before a trial: at most one more
    workers = {t.user_attrs["worker"] for t in trials}
    assert len(workers) == 2, workers  # both processes ran trials
    runs = trial_runs(project)
    assert sorted(runs) == numbers
    parents = {r.data.tags["mlflow.parentRunId"] for r in runs.values()}
    assert len(parents) == 1
    for trial in trials:
        run = runs[trial.number]
        assert float(run.data.params["w"]) == trial.params["w"]
        assert run.data.tags["mlops.tune.state"] == trial.state.name
        if trial.state == TrialState.COMPLETE:
            assert run.data.metrics["mse"] == trial.value and run.info.status == "FINISHED"
    from ml_service.config import load_settings
    from ml_service.workspace.tracking import connect

    client = connect(load_settings(project))
    for run in runs.values():  # a trial's metrics are stamped in milliseconds within its run, as MLflow's own
        stamps = [m.timestamp for m in client.get_metric_history(run.info.run_id, "mse")]
        assert all(run.info.start_time <= stamp <= run.info.end_time for stamp in stamps), (stamps, run.info)
    parent = client.get_run(parents.pop())
    assert parent.data.tags["mlops.kind"] == "tune" and parent.info.status == "FINISHED"
    assert float(parent.data.params["best.w"]) == study.best_trial.params["w"]
    assert parent.data.metrics["best_mse"] == study.best_value


def test_rerunning_resumes_the_study_and_a_trial_that_falls_behind_is_pruned(project):
    from optuna.trial import TrialState

    before = {t.number: (t.state, t.params) for t in study_of(project).get_trials(deepcopy=False)}
    again = mlops(project, "tune", "--trials", str(len(before) + 6))
    assert again.returncode == 0, again.stderr[-3000:]
    after = study_of(project).get_trials(deepcopy=False)
    assert {t.number: (t.state, t.params) for t in after if t.number in before} == before  # kept as they were
    assert [t.number for t in after] == list(range(len(before) + 6))
    pruned = [t for t in after if t.state == TrialState.PRUNED]
    assert pruned, [(t.number, t.state.name, t.params) for t in after]
    runs = trial_runs(project)
    for trial in pruned:
        assert runs[trial.number].data.tags["mlops.tune.state"] == "PRUNED"
        assert "mse" not in runs[trial.number].data.metrics  # it never finished training
    nothing = mlops(project, "tune", "--trials", str(len(before) + 6))
    assert nothing.returncode == 0 and len(study_of(project).get_trials(deepcopy=False)) == len(after)


def test_a_malformed_search_space_stops_before_any_trial(project, tmp_path):
    root = write_project(tmp_path / "root")
    parameters = root / "tinyproj" / "parameters.yml"
    parameters.write_text(parameters.read_text().replace("low: 0.0, high: 6.0", "low: 6.0, high: 0.0"))
    env = env_of(root, tmp_path / "state")
    refused = mlops(env, "tune")
    assert refused.returncode == 2
    assert f"{parameters}: tuning.search_space.w: low (6.0) must be below high (0.0)" in refused.stderr
    assert not (tmp_path / "state" / "tune.db").exists()  # no study, no trial


def test_the_pipelines_train_runs_with_the_best_trials_parameters(project, tmp_path):
    from ml_service.config import load_settings
    from ml_service.workspace.tracking import connect

    best = study_of(project).best_trial.params["w"]
    ran = mlops(project, "pipeline", "run")
    assert ran.returncode == 0, ran.stderr[-3000:]
    settings = load_settings(project)
    client = connect(settings)
    experiment = client.get_experiment_by_name(settings.experiment)
    train = client.search_runs([experiment.experiment_id], "tags.`mlops.step.name` = 'train'")[0]
    assert float(train.data.params["w"]) == best and train.data.metrics["w"] == best
    tune = client.search_runs([experiment.experiment_id], "tags.`mlops.step.name` = 'tune'")[0]
    assert tune.data.tags["mlops.outcome"].startswith("tuned: study ")
    saved = Path(client.download_artifacts(tune.info.run_id, f"{OUTPUTS}/best_params.json", str(tmp_path)))
    assert json.loads(saved.read_text()) == {"w": best}  # the step's output: the best trial's parameters
    # an explicit --param still wins over the tuned value
    explicit = mlops(project, "pipeline", "run", "--param", "w=1.5")
    assert explicit.returncode == 0, explicit.stderr[-3000:]
    latest = client.search_runs([experiment.experiment_id], "tags.`mlops.step.name` = 'train'",
                                order_by=["attributes.start_time DESC"])[0]
    assert float(latest.data.params["w"]) == 1.5


def test_a_worker_killed_mid_trial_leaves_its_trial_failed_and_the_study_usable(tmp_path):
    import signal
    import time

    from optuna.trial import TrialState

    env = env_of(write_project(tmp_path / "root", trials=3, sleep=1.0), tmp_path / "state")
    victim = subprocess.Popen([sys.executable, "-m", "ml_service.cli", "tune"], cwd=env["MLOPS_ROOT"], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline, running = time.monotonic() + 900, None
    while running is None and time.monotonic() < deadline and victim.poll() is None:
        if (tmp_path / "state" / "tune.db").exists():
            try:
                trials = study_of(env).get_trials(deepcopy=False)
            except (AssertionError, KeyError):
                trials = []
            running = next((t for t in trials if t.state == TrialState.RUNNING and t.intermediate_values), None)
        time.sleep(0.2)
    assert running is not None, victim.communicate()[1][-3000:]
    os.killpg(victim.pid, signal.SIGKILL)  # in the middle of its training
    victim.wait()
    assert study_of(env).trials[running.number].state == TrialState.RUNNING

    survivor = mlops(env, "tune")
    assert survivor.returncode == 0, survivor.stderr[-3000:]
    trials = study_of(env).get_trials(deepcopy=False)
    assert trials[running.number].state == TrialState.FAIL and not [t for t in trials if t.state.name == "RUNNING"]
    assert sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials) >= 3
    killed = trial_runs(env)[running.number]
    assert killed.info.status == "KILLED" and killed.data.tags["mlops.tune.state"] == "KILLED"


FAILING_TRAIN = '''
"""A train step that fails or succeeds by the letters of plan.txt (F: fail), one letter a call."""
from pathlib import Path

PLAN = Path(__file__).resolve().parents[1] / "plan.txt"


def run(inputs, params, output_dir, context):
    calls = PLAN.with_name("calls.txt")
    call = int(calls.read_text()) if calls.exists() else 0
    calls.write_text(str(call + 1))
    if PLAN.read_text()[call:call + 1] == "F":
        raise ValueError(f"call {call} fails as planned")
    header, first = Path(inputs["data"]).read_text().splitlines()[:2]
    (Path(output_dir) / "test.csv").write_text(f"{header}\\n{first}\\n")  # held-out rows of its data
    return {"metrics": {"mse": 1.0 + call, "w": float(params.get("w") or 0)}}
'''


@pytest.mark.parametrize("plan, code, states", [
    ("FFFFFFF", 1, "FFF"),       # three failed trials in a row stop the study (study.py MAX_FAILURES_IN_A_ROW)
    ("FFSFFSFFF", 0, "FFCFFC"),  # two in a row do not, and a success starts the count again
], ids=["three-in-a-row-stop", "two-in-a-row-go-on"])
def test_failed_trials_in_a_row_stop_the_study_at_the_third(tmp_path, monkeypatch, plan, code, states):
    """The count of failed trials in a row (tune/study.py), on both sides: the third in a row stops `mlops tune`
    (exit 1, no fourth trial), two in a row do not, and a completed trial resets the count. The plan's failures
    end after a few trials, so a count that never stops shows up as more trials, not as a hang."""
    from optuna.trial import TrialState

    from ml_service.cli import main

    root = write_project(tmp_path / "root", trials=2)
    (root / "tinyproj" / "train.py").write_text(FAILING_TRAIN)
    (root / "plan.txt").write_text("S" + plan)  # the first call: the step checked once before any trial
    env = env_of(root, tmp_path / "state")
    for key in [k for k in os.environ if k.startswith(("MLOPS_", "MLFLOW_TRACKING_"))]:
        monkeypatch.delenv(key)
    for key in ("MLOPS_ROOT", "MLOPS_STATE_DIR", "MLFLOW_DISABLE_TELEMETRY"):
        monkeypatch.setenv(key, env[key])
    for name in [n for n in sys.modules if n == "tinyproj" or n.startswith("tinyproj.")]:
        monkeypatch.delitem(sys.modules, name)  # another test's tinyproj, from another root
    monkeypatch.syspath_prepend(str(root))
    assert main(["tune", "--trials", "2"]) == code
    letters = {TrialState.FAIL: "F", TrialState.COMPLETE: "C"}
    assert "".join(letters.get(t.state, "?") for t in study_of(env).get_trials(deepcopy=False)) == states
    assert (root / "calls.txt").read_text() == str(1 + len(states))
    for name in [n for n in sys.modules if n == "tinyproj" or n.startswith("tinyproj.")]:
        del sys.modules[name]
