"""timeoutInMinutes: 0 is Azure's maximum, not zero minutes (issue 23: 14 real files, 4 of MLOpsPython's).

Azure: docs/pipelines/process/phases.md "Timeouts" ("When 0 is specified, the maximum limit is used":
no limit on a self-hosted agent); a step's 0 is no timeout (agent Agent.Worker/TaskRunner.cs: Timeout is
null unless TimeoutInMinutes > 0).
"""
from __future__ import annotations

import pytest

pytestmark = pytest.mark.integration


def test_a_job_timeout_of_zero_lets_its_steps_finish(project):
    project.add("timeout_zero.yml")
    run = project.run("timeout_zero.yml")
    assert run.out.get("job") == "finished"  # today: killed at once ("timed out after -0.00 minutes")
    assert run.out.get("step") == "finished"
    assert run.result == "succeeded"
