"""kill -9 of `mlops pipeline run`: no step process outlives it, and its runs do not stay RUNNING.

Real processes, a real MLflow sqlite store in a temp dir; the runner is killed with SIGKILL while
a step (and a child the step started) is running.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.integration

# A step runs in a fresh interpreter, or forked from the preloading server when it declares imports.
PROCESS_MODES = {"fresh": "", "forked": "imports: [json]"}


def alive(pid: int) -> bool:
    """The process exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


def parent_of(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat[stat.rindex(")") + 2:].split()[1])


def wait_for(predicate, seconds: float = 60) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return predicate()


def mlops(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ml_service.cli", *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=300)


def runs_of(client, settings, pipeline: str):
    experiment = client.get_experiment_by_name(settings.experiment)
    return client.search_runs([experiment.experiment_id], f"tags.`mlflow.runName` = '{pipeline}'")


@pytest.mark.parametrize("mode", sorted(PROCESS_MODES))
def test_a_killed_runner_leaves_no_step_process_and_no_running_run(workspace, tmp_path, mode):
    pid_file = tmp_path / "child.pid"
    hang = tmp_path / "hang.yml"
    hang.write_text(f"""
name: hangs
steps:
  hang:
    function: "tests.support.steps:spawn_and_hang"
    params: {{pid_file: "{pid_file}"}}
    reuse: false
    {PROCESS_MODES[mode]}
""")
    runner = subprocess.Popen([sys.executable, "-m", "ml_service.cli", "pipeline", "run", str(hang)], cwd=ROOT,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert wait_for(lambda: pid_file.exists() and pid_file.read_text(), 120), "the step never started"
        grandchild = int(pid_file.read_text())
        step = parent_of(grandchild)
        assert step != runner.pid and alive(step) and alive(grandchild)
    finally:
        os.kill(runner.pid, signal.SIGKILL)
        runner.wait()

    survivors = lambda: [pid for pid in (step, grandchild) if alive(pid)]  # noqa: E731
    assert wait_for(lambda: not survivors(), 30), f"step processes outlived the killed runner: {survivors()}"

    from ml_service.workspace.tracking import connect

    client = connect(workspace)
    (killed,) = runs_of(client, workspace, "hangs")
    assert killed.info.status == "RUNNING"  # nothing could end it: its process died with SIGKILL

    quick = tmp_path / "quick.yml"
    quick.write_text("name: quick\nsteps: {only: {function: 'tests.support.steps:write_output'}}\n")
    result = mlops("pipeline", "run", str(quick))
    assert result.returncode == 0, result.stderr
    (next_run,) = runs_of(client, workspace, "quick")

    for run_id in (killed.info.run_id, runs_of(client, workspace, "hang")[0].info.run_id):
        ended = client.get_run(run_id)
        assert ended.info.status == "KILLED"
        reason = ended.data.tags["mlops.error"]
        assert f"pid {runner.pid}" in reason and "ended without closing it" in reason
        assert next_run.info.run_id in reason


def test_a_live_runners_run_is_left_alone(workspace, tmp_path):
    """The next start ends only runs whose process is gone: a run of a live process stays RUNNING."""
    pid_file = tmp_path / "child.pid"
    hang = tmp_path / "hang.yml"
    hang.write_text(f"name: hangs\nsteps: {{hang: {{function: 'tests.support.steps:spawn_and_hang', "
                    f"params: {{pid_file: '{pid_file}'}}, reuse: false}}}}\n")
    runner = subprocess.Popen([sys.executable, "-m", "ml_service.cli", "pipeline", "run", str(hang)], cwd=ROOT,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert wait_for(lambda: pid_file.exists() and pid_file.read_text(), 120), "the step never started"
        quick = tmp_path / "quick.yml"
        quick.write_text("name: quick\nsteps: {only: {function: 'tests.support.steps:write_output'}}\n")
        assert mlops("pipeline", "run", str(quick)).returncode == 0
        from ml_service.workspace.tracking import connect

        client = connect(workspace)
        (running,) = runs_of(client, workspace, "hangs")
        assert running.info.status == "RUNNING" and "mlops.error" not in running.data.tags
    finally:
        runner.send_signal(signal.SIGINT)  # Ctrl-C: the runner ends its own run and kills the step
        runner.wait(timeout=300)  # a loaded machine may take a while to close the run
