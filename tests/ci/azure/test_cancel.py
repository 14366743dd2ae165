"""A run canceled while it runs (hidden-probe sweep, issue 23): the running step ends Canceled, and then, as on
Azure, the steps and jobs whose condition still holds run: always() and canceled() ones (with Agent.JobStatus
Canceled in the job that was running), while succeeded() ones are skipped.

Azure: docs/pipelines/process/conditions.md (always(): "Always evaluates to True (even when canceled)"; a job with
always() runs after a cancel), expressions.md "canceled"; microsoft/azure-pipelines-agent
src/Agent.Worker/StepsRunner.cs (on the job's cancellation: Agent.JobStatus Canceled, conditions re-evaluated).
"""
from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from tests.ci.azure.conftest import CHECKOUT

pytestmark = pytest.mark.integration


def test_a_canceled_run_still_runs_its_always_steps_and_jobs(project):
    project.add("cancel_always.yml")
    env = {**os.environ, "MLOPS_ROOT": str(project.root),
           "PYTHONPATH": os.pathsep.join(filter(None, (str(CHECKOUT), os.environ.get("PYTHONPATH"))))}
    engine = subprocess.Popen([sys.executable, "-m", "ml_service.cli", "ci", "run", ".pipelines/cancel_always.yml"],
                              cwd=project.root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        marker = project.root / ".mlops" / "ci" / "work" / "started-1"
        for _ in range(600):  # until the long step has started (polled, never a fixed wait)
            if marker.exists() or engine.poll() is not None:
                break
            time.sleep(0.1)
        assert marker.exists()
        assert project.cli("ci", "cancel", "1").returncode == 0
        engine.wait(timeout=120)
    finally:
        if engine.poll() is None:
            engine.kill()
            engine.wait()
    run = project.result(project.store(), 1)
    assert run.result == "canceled" and "slept" not in run.out
    assert run.steps()["long"] == "Canceled"
    assert run.out.get("always") == "Canceled"  # before: nothing ran after the cancel
    assert run.out.get("canceledStep") == "ran"
    assert "succeededStep" not in run.out
    assert run.out.get("alwaysJob") == "ran"  # a job with always() runs after a cancel, its steps as usual
    assert "defaultJob" not in run.out
