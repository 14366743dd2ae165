"""${{ variables.X }} at compile time sees what Azure's template expansion sees.

Azure: docs/pipelines/process/templates.md "Template expressions" (the variables context holds "all the
variables specified in the YAML file plus many of the predefined variables"), docs/pipelines/build/
variables.md (the "Available in templates?" column: Build.SourceBranch, Build.SourceBranchName,
Build.Reason, Build.DefinitionName ... Yes). OpenAstronomy's run-tox-env.yml reads job variables back
with ${{ variables.python }}; mlops-project-template branches on variables['Build.SourceBranchName'].
"""
from __future__ import annotations

import pytest

pytestmark = pytest.mark.integration


def test_list_form_template_stage_and_job_variables_reach_compile_time_expressions(project):
    project.add("compile_vars.yml", "templates/vars.yml")
    run = project.run("compile_vars.yml")
    assert run.result == "succeeded"
    assert run.out["list"] == "from-list"  # today: empty (only top-level mapping variables are seen)
    assert run.out["template"] == "from-template"
    assert run.out["stage"] == "from-stage"
    assert run.out["job"] == "from-job"
    assert run.out["derived"] == "from-job-derived"  # an earlier entry of the same block


def test_predefined_variables_known_at_compile_time_have_their_values(project):
    project.add("compile_vars.yml", "templates/vars.yml")
    run = project.run("compile_vars.yml", reason="IndividualCI")
    assert run.out["branchName"] == "main"  # today: empty
    assert run.out["sourceBranch"] == "refs/heads/main"
    assert run.out["reason"] == "IndividualCI"
    assert run.out["definition"] == "compile_vars"
    assert run.out["env"] == "prd"  # ${{ if eq(variables['Build.SourceBranchName'], 'main') }}


def test_a_conditional_variable_follows_the_branch_being_built(project):
    project.add("compile_vars.yml", "templates/vars.yml")
    run = project.run("compile_vars.yml", branch="feature/x")
    assert run.out["branchName"] == "x"  # the last path segment of the ref
    assert run.out["sourceBranch"] == "refs/heads/feature/x"
    assert run.out["env"] == "dev"
