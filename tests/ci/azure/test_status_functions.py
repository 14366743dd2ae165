"""Status functions with job names: succeeded('B'), failed('A'), succeeded('A', 'B') read the named
dependencies only; a name that is no dependency is an error naming the job, never a silent false.

Azure: docs/pipelines/process/expressions.md, "Job status check functions" (with job names as arguments,
evaluates those jobs only)."""
from __future__ import annotations

import pytest

pytestmark = pytest.mark.integration


def test_named_status_functions_read_only_the_named_dependencies(project):
    project.add("status_names.yml")
    run = project.run("status_names.yml")
    jobs = {path.rsplit("/", 1)[-1]: result for path, result in run.jobs().items()}
    assert jobs["A"] == "Failed" and run.out.get("B") == "ran"
    assert run.out.get("OnlyB") == "ran" and jobs["OnlyB"] == "Succeeded"  # A's failure is not read
    assert run.out.get("AFailed") == "ran"
    assert "BFailed" not in run.out and jobs["BFailed"] == "Skipped"
    assert "Both" not in run.out and jobs["Both"] == "Skipped"


def test_a_name_that_is_no_dependency_fails_the_job_and_says_so(project):
    project.add("status_unknown.yml")
    run = project.run("status_unknown.yml")
    assert run.out.get("A") == "ran" and "Late" not in run.out
    assert run.result == "failed" and "__default/Late" not in run.jobs()
    assert "job __default/Late" in run.error and "Nope is not a dependency" in run.error
