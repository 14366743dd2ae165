"""Tuning against the real team workspace: `mlops workspace up` (Debian's PostgreSQL 15 behind MLflow's server,
tests/team/test_workspace.py's helpers) in a temp state dir, with the tiny tuning project as the repository.

Two `mlops tune` processes (as two machines would run them) share one study in the team's PostgreSQL: no trial
number twice, every trial recorded in MLflow, and the pipeline's train then runs with the best trial's value. A
worker killed in the middle of a trial leaves the study usable: the next worker marks that trial FAIL (its MLflow
run KILLED) and the study finishes.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from tests.support.tune_project import write_project
from tests.team.test_workspace import clean_env, require_postgres, run_mlops

pytestmark = [pytest.mark.integration, pytest.mark.slow]
TRIALS = 8


@pytest.fixture(scope="module")
def team(tmp_path_factory):
    """A team workspace started for the tiny project (stopped at the end)."""
    require_postgres()
    folder = tmp_path_factory.mktemp("tune-team")
    root = write_project(folder / "root", trials=TRIALS, sleep=0.2)
    env = clean_env(folder / "state", root=root)
    started = run_mlops(env, "workspace", "up")
    assert started.returncode == 0, started.stdout + started.stderr
    yield env
    run_mlops(env, "workspace", "down")


def tune_process(env: dict, *args: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "ml_service.cli", "tune", *args], cwd=env["MLOPS_ROOT"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)


def storage_of(env: dict):
    from ml_service.config import load_settings
    from ml_service.tune.storage import open_storage, storage_for

    found = storage_for(load_settings(env), environ=env)
    assert found.kind == "team" and found.url.startswith("postgresql+psycopg2://mlflow@127.0.0.1:")
    return open_storage(found, 1)


def client_of(env: dict):
    from ml_service.config import load_settings
    from ml_service.workspace.tracking import connect

    settings = load_settings(env)
    return settings, connect(settings)


def test_two_workers_share_one_study_on_the_team_postgres_and_train_gets_the_best(team):
    import optuna
    from optuna.trial import TrialState

    workers = [tune_process(team) for _ in range(2)]
    outputs = [w.communicate(timeout=1800) for w in workers]
    for worker, (out, err) in zip(workers, outputs):
        assert worker.returncode == 0, err[-3000:]
    storage = storage_of(team)
    (summary,) = optuna.get_all_study_summaries(storage)
    trials = optuna.load_study(study_name=summary.study_name, storage=storage).get_trials(deepcopy=False)
    numbers = [t.number for t in trials]
    assert len(numbers) == len(set(numbers)) and sorted(numbers) == list(range(len(numbers)))
    assert len({t.user_attrs["worker"] for t in trials}) == 2  # both processes ran trials of the one study
    assert TRIALS <= sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials) <= TRIALS + 1
    settings, client = client_of(team)
    experiment = client.get_experiment_by_name(settings.experiment)
    runs = client.search_runs([experiment.experiment_id], "tags.`mlops.kind` = 'trial'", max_results=1000)
    assert sorted(int(r.data.tags["mlops.tune.trial"]) for r in runs) == numbers
    assert len({r.data.tags["mlflow.parentRunId"] for r in runs}) == 2  # one study run per `mlops tune`

    best = optuna.load_study(study_name=summary.study_name, storage=storage).best_trial.params["w"]
    ran = run_mlops(team, "pipeline", "run")
    assert ran.returncode == 0, ran.stdout + ran.stderr
    train = client.search_runs([experiment.experiment_id], "tags.`mlops.step.name` = 'train'")[0]
    assert float(train.data.params["w"]) == best


def test_a_worker_killed_mid_trial_leaves_the_study_usable(team):
    import optuna
    from optuna.trial import TrialState

    study = "killed-worker"
    env = {**team}
    project = os.path.join(env["MLOPS_ROOT"], "tinyproj", "pipeline.yml")
    with open(project) as handle:
        text = handle.read()
    with open(project, "w") as handle:  # 1 s an epoch: a trial lasts about 5 s
        handle.write(text.replace("sleep: 0.2", "sleep: 1.0"))
    try:
        victim = tune_process(env, "--study", study, "--trials", "4", start_new_session=True)
        storage = storage_of(env)
        deadline, running = time.monotonic() + 900, None
        while running is None and time.monotonic() < deadline and victim.poll() is None:
            try:
                trials = optuna.load_study(study_name=study, storage=storage).get_trials(deepcopy=False)
            except KeyError:  # not created yet
                trials = []
            running = next((t for t in trials if t.state == TrialState.RUNNING and t.intermediate_values  # training
                            and t.user_attrs.get("worker", "").endswith(f":{victim.pid}")), None)
            time.sleep(0.1)
        assert running is not None, victim.communicate()[1][-3000:]
        os.killpg(victim.pid, signal.SIGKILL)
        victim.wait()
        assert optuna.load_study(study_name=study, storage=storage).trials[running.number].state == TrialState.RUNNING

        survivor = tune_process(env, "--study", study, "--trials", "4")
        out, err = survivor.communicate(timeout=1800)
        assert survivor.returncode == 0, err[-3000:]
    finally:
        with open(project, "w") as handle:
            handle.write(text)
    trials = optuna.load_study(study_name=study, storage=storage).get_trials(deepcopy=False)
    assert trials[running.number].state == TrialState.FAIL
    assert not [t for t in trials if t.state == TrialState.RUNNING]
    assert sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials) >= 4
    _, client = client_of(env)
    killed = client.get_run(trials[running.number].user_attrs["mlflow_run_id"])
    assert killed.info.status == "KILLED" and killed.data.tags["mlops.tune.state"] == "KILLED"
