"""Issue 23 item 6: strategy matrix (and maxParallel), parallel, a root-level strategy, a matrix from a
runtime expression, with Azure's job names and variables.

Azure: docs/pipelines/process/phases.md ("Multi-job configuration": one job per matrix configuration,
its variables set; "Slicing": System.JobPositionInPhase / System.TotalJobsInPhase; a matrix from
`$[ ]` holding JSON), yaml-schema jobs-job-strategy.md (the configuration name is appended to the job's;
maxParallel unspecified or 0: no limit), docs/pipelines/process/variables.md (a leg is addressed by its
configuration name: dependencies.<job>.outputs['<leg>.<step>.<variable>'], a slice as job<N>), so
System.JobName of a leg is its configuration name. scikit-learn's posix.yml relies on a leg's variables
overriding the job's (COVERAGE).
"""
from __future__ import annotations

import pytest

pytestmark = pytest.mark.integration


def test_a_matrix_runs_one_job_per_leg_with_its_variables(project):
    project.add("matrix.yml")
    run = project.run("matrix.yml")
    assert sorted(run.outs.get("leg", [])) == ["py310 3.10 3.10 leg", "py38 3.8 3.8 job-default"]
    assert run.result == "succeeded"  # today: refused ("strategy ... not supported locally")


def test_a_legs_output_is_read_through_the_leg_name(project):
    project.add("matrix.yml")
    run = project.run("matrix.yml")
    assert run.out.get("after") == "3.10"


def test_parallel_runs_n_slices(project):
    project.add("parallel.yml")
    run = project.run("parallel.yml")
    assert sorted(run.outs.get("slice", [])) == ["1/3", "2/3", "3/3"]
    assert run.out.get("second") == "2"  # the slice named job2


def test_a_root_level_strategy_of_a_steps_pipeline(project):
    project.add("matrix_root.yml")
    run = project.run("matrix_root.yml")
    assert sorted(run.outs.get("version", [])) == ["3.7", "3.8"]  # today: "unknown key 'strategy'"


def test_a_matrix_from_a_runtime_expression(project):
    project.add("matrix_json.yml")
    run = project.run("matrix_json.yml")
    assert sorted(run.outs.get("myvar", [])) == ["A", "B"]
