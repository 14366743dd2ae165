"""Agentless jobs (`pool: server`): ManualValidation@0/@1 is one of the run's approvals (the run waits, `mlops ci
approve` / `reject` decides, onTimeout when nobody does), Delay@1 waits for real, what Azure refuses (a script or
an agent task in an agentless job, a server task in an agent job) refuses the run before it starts, naming the file
and line, and a server task that needs Azure (InvokeRESTAPI) is named in the run's plan before it starts and fails
when reached, as a cloud task in an agent job does.

Azure: docs/pipelines/process/phases.md "Server jobs"; task reference manual-validation-v0/-v1, delay-v1,
invoke-rest-api-v1.
"""
from __future__ import annotations

import os
import time

import pytest

from tests.ci.azure.conftest import CHECKOUT

pytestmark = pytest.mark.integration


def _wait_for(project, run_id: int, status: str = "completed", limit: float = 120.0):
    """The run once it has the status (polled; the limit only stops a hung test)."""
    end = time.monotonic() + limit
    while True:
        run = project.store().get_run(run_id)
        if run.status == status or time.monotonic() > end:
            return run
        time.sleep(0.5)


def test_a_manual_validation_waits_and_approval_resumes_the_run(project):
    project.add("agentless_validation.yml")
    run = project.run("agentless_validation.yml")
    assert run.run.status == "waiting" and run.out.get("built") == "yes"
    assert "released" not in run.out  # nothing after the validation ran
    pending = project.store().approvals(run.run.id, "pending")
    assert [(a["kind"], a["notify"], a["instructions"]) for a in pending] == [
        ("validation", "ops@example.com", "check the build")]
    decided = project.cli("ci", "approve", str(run.run.id), "--comment", "looks good")
    assert decided.returncode == 0, decided.stderr
    after = project.result(project.store(), run.run.id)
    assert after.result == "succeeded"
    assert after.steps()["validate"] == "Succeeded" and after.out.get("released") == "yes"
    assert after.outs.get("built") == ["yes"]  # the job before the validation did not run again


def test_a_rejected_validation_fails_its_job_and_the_run_goes_on_by_conditions(project):
    project.add("agentless_validation.yml")
    run = project.run("agentless_validation.yml")
    decided = project.cli("ci", "reject", str(run.run.id), "--comment", "no")
    assert decided.returncode == 1 and "Traceback" not in decided.stderr  # resumed, and the run failed
    after = project.result(project.store(), run.run.id)
    assert after.steps()["validate"] == "Failed"
    assert "released" not in after.out  # Release depends on Validate (succeeded())
    assert after.out.get("validate") == "Succeeded"  # Report (always()) ran after it
    assert after.result == "failed"


def test_only_the_validations_approvers_may_decide(project):
    project.add("agentless_validation.yml")
    run = project.run("agentless_validation.yml", params={"approvers": "lead@example.com"})
    refused = project.cli("ci", "approve", str(run.run.id))  # this OS account and a claimed name: no approver
    assert refused.returncode != 0 and "lead@example.com" in refused.stderr
    assert project.store().get_run(run.run.id).status == "waiting"
    assert [a["status"] for a in project.store().approvals(run.run.id)] == ["pending"]
    assert "released" not in project.result(project.store(), run.run.id).out


@pytest.mark.parametrize("minutes, seconds", [("60", 3600.0), ("0.5", 30.0), ("0", 4320 * 60.0)])
def test_a_validation_waits_its_timeout_in_minutes_as_seconds_or_the_jobs_when_it_has_none(project, minutes, seconds):
    """The pending validation's bound, as stored (no clock involved): the step's timeoutInMinutes in seconds; 0 means
    none of its own, and the job's 4320 minutes apply."""
    project.add("agentless_validation.yml")
    run = project.run("agentless_validation.yml", params={"minutes": minutes})
    [approval] = project.store().approvals(run.run.id)
    assert approval["timeout_at"] - approval["requested"] == pytest.approx(seconds)


@pytest.mark.parametrize("on_timeout, step, result", [("resume", "Succeeded", "succeeded"),
                                                      ("reject", "Failed", "failed")])
def test_on_timeout_resumes_or_rejects_without_anyone_deciding(project, on_timeout, step, result):
    # the run is resumed in a process of its own (`python -m ml_service.cli`): it must import this checkout's code
    project.monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, (str(CHECKOUT),
                                                                           os.environ.get("PYTHONPATH")))))
    project.add("agentless_validation.yml")
    run = project.run("agentless_validation.yml", params={"onTimeout": on_timeout, "minutes": "0.02"})
    assert run.run.status == "waiting"
    time.sleep(1.5)  # past the 1.2 s timeout: opening the store times the validation out and resumes the run
    project.store()
    ended = _wait_for(project, run.run.id)
    after = project.result(project.store(), run.run.id)
    assert ended.status == "completed" and ended.result == result
    assert after.steps()["validate"] == step


def test_delay_waits_for_real_and_the_jobs_timeout_cuts_it(project):
    project.add("agentless_delay.yml")
    run = project.run("agentless_delay.yml")
    assert float(run.out["after"]) - float(run.out["before"]) >= 3.0  # delayForMinutes 0.05 = 3 s
    assert run.steps()["too long"] == "Failed"
    assert run.jobs()["__default/Wait"] == "Succeeded"


def test_a_script_in_an_agentless_job_is_refused_before_the_run(project):
    project.add("agentless_script.yml")
    run = project.run("agentless_script.yml")
    assert "agentless_script.yml:11" in run.error and "agentless_script.yml:4" in run.error  # the step, the pool
    assert not [r for r in run.records if r["kind"] == "step"] and "ran" not in run.out


def test_a_server_task_needing_azure_is_named_before_the_run_and_fails_when_reached(project):
    project.add("agentless_cloud.yml")
    run = project.run("agentless_cloud.yml")
    plan = " ".join(r["detail"] or "" for r in run.records if r["kind"] == "plan")
    assert "agentless_cloud.yml:11" in plan and "service connection" in plan  # InvokeRESTAPI, before any step
    assert run.out.get("before") == "yes"  # the run went as far as the jobs before it
    assert run.steps()["call api"] == "Failed" and run.result == "failed"


def test_a_server_task_in_an_agent_job_is_refused_before_the_run(project):
    project.add("agentless_in_agent_job.yml")
    run = project.run("agentless_in_agent_job.yml")
    assert "agentless_in_agent_job.yml:6" in run.error and "pool: server" in run.error
    assert "ran" not in run.out and not [r for r in run.records if r["kind"] == "step"]
