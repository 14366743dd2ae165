"""Two jobs with one name are refused before the run; jobs without a name are both run.

Azure: "Stage {0} job {1} appears more than once. Job names must be unique within a stage."
(PipelineStrings.StagePhaseNamesMustBeUnique of the DistributedTask.Pipelines library, in its open fork
actions/runner src/Sdk/DTPipelines); `- job:` with no name is valid and shown as "Job"
(Azure/azure-rest-api-specs#27338).
"""
from __future__ import annotations

import pytest

pytestmark = pytest.mark.integration


def test_two_jobs_with_one_name_are_refused_before_anything_runs(project):
    project.add("dup_jobs.yml")
    run = project.run("dup_jobs.yml")
    assert run.result == "failed"
    assert "first" not in run.out and "second" not in run.out  # today: the first runs, the second is dropped
    assert "Same" in run.error and "dup_jobs.yml" in run.error


def test_jobs_without_names_all_run(project):
    project.add("null_jobs.yml")
    run = project.run("null_jobs.yml")
    assert sorted(run.outs.get("unnamed", [])) == ["one", "two"]  # today: the second is dropped
    assert run.result == "succeeded"
