"""A stage variable from another stage's job output: $[ stageDependencies.A.A1.outputs['step.var'] ].

Azure: the example in docs/pipelines/process/variables.md ("Use outputs in a different stage"), stage
conditions with dependencies.A.outputs['A1.printvar.shouldrun'] (docs/pipelines/process/expressions.md
"Stage to stage dependencies").
"""
from __future__ import annotations

import pytest

pytestmark = pytest.mark.integration


def test_a_stage_variable_reads_an_output_of_an_earlier_stage(project):
    project.add("stage_deps.yml")
    run = project.run("stage_deps.yml")
    assert run.out.get("stageVar") == "true"  # today: empty


def test_a_stage_condition_reads_an_output_of_its_dependency(project):
    """Regression guard (passes today)."""
    project.add("stage_deps.yml")
    run = project.run("stage_deps.yml")
    assert run.out.get("B") == "ran"
