"""What a job starts with and how a job's timeout ends it (hidden-probe sweep, issue 23).

Azure: the agent deletes and recreates $(Build.ArtifactStagingDirectory) and $(Common.TestResultsDirectory) when
every job starts (microsoft/azure-pipelines-agent src/Agent.Worker/Build/BuildDirectoryManager.cs, PrepareDirectory;
docs/pipelines/process/phases.md "Workspace": "always deleted and recreated prior to every build"), and
`workspace: clean: outputs` deletes $(Build.BinariesDirectory). A job past timeoutInMinutes is canceled
(phases.md "Timeouts": "how long to run the job before automatically cancelling"; cancelTimeoutInMinutes: "how much
time to give 'run always even if cancelled tasks'"); the agent (src/Agent.Worker/StepsRunner.cs) then sets the job
result and Agent.JobStatus to Canceled, cancels the running step and runs only the steps whose condition still
holds.
"""
from __future__ import annotations

import pytest

pytestmark = pytest.mark.integration


def test_each_job_starts_with_empty_staging_and_test_results(project):
    project.add("staging_per_job.yml")
    run = project.run("staging_per_job.yml")
    assert run.result == "succeeded", run.error
    assert run.out["staging"] == "0"  # before: 1 (job A's file)
    assert run.out["testresults"] == "0"  # before: 1
    assert run.out["binaries"] == "1"  # kept without clean (a self-hosted agent keeps it)
    assert run.out["binariesAfterClean"] == "0"  # before: 1


def test_a_timed_out_job_is_canceled_and_runs_only_always_and_canceled_steps(project):
    project.add("job_timeout_cancel.yml")
    run = project.run("job_timeout_cancel.yml")
    assert "slept" not in run.out
    assert run.out.get("always") == "Canceled"  # before: killed at once (the job's time was up), Failed
    assert run.out.get("canceled") == "ran"  # before: skipped
    assert "failed" not in run.out  # before: ran
    assert "succeeded" not in run.out
    assert list(run.jobs().values()) == ["Canceled"]  # before: Failed
