"""Parameters passed to templates: the old mapping form accepts any parameter, a template that declares
none still sees what it is passed; only the typed (list) form refuses an unknown one.

Azure: real templates depend on it and run on Azure DevOps: OpenAstronomy run-tox-env.yml declares
envs/coverage/pytest/default_python in the mapping form and reads parameters.posargs, toxverspec ...
that callers pass; MLOpsManufacturing dependency-update-template.yml declares none and reads
parameters.workingDirectory. docs/pipelines/process/template-parameters.md: typed parameters are checked.
"""
from __future__ import annotations

import pytest

pytestmark = pytest.mark.integration


def test_the_old_mapping_form_accepts_every_passed_parameter_and_keeps_its_defaults(project):
    project.add("params_old.yml", "templates/old-params.yml", "templates/no-params.yml")
    run = project.run("params_old.yml")
    assert run.error == ""  # today: "unknown parameter(s) extra"
    assert run.out["old"] == "hi passed default-kept"


def test_a_template_without_parameters_sees_what_it_is_passed(project):
    project.add("params_old.yml", "templates/old-params.yml", "templates/no-params.yml")
    run = project.run("params_old.yml")
    assert run.out["none"] == "en"


def test_typed_parameters_still_refuse_an_unknown_one(project):
    """Regression guard (passes today)."""
    project.add("params_typed.yml", "templates/typed-params.yml")
    run = project.run("params_typed.yml")
    assert run.result == "failed" and "unexpected" in run.error
    assert "typed" not in run.out
