"""Issue 23 item 7: `mlops ci expand FILE [--param k=v] [--branch B]` prints the fully expanded YAML
(templates, parameters, ${{ }} applied, as Azure's "Download full YAML" shows it); `mlops ci lint`
follows template: references and runs the schema check.
"""
from __future__ import annotations

import pytest
import yaml

pytestmark = pytest.mark.integration


def _scripts(document) -> list[str]:
    return [step["script"].strip() for step in document["steps"] if "script" in step]


def test_expand_prints_the_expanded_pipeline(project):
    project.add("expand.yml", "templates/greet.yml")
    shown = project.cli("ci", "expand", ".pipelines/expand.yml", "--param", "target=prod", "--branch", "feature/x")
    assert shown.returncode == 0, shown.stderr  # today: no such command
    document = yaml.safe_load(shown.stdout)
    assert _scripts(document) == ['echo "hello prod"', 'echo "tier dev"']
    assert "${{" not in shown.stdout


def test_expand_follows_the_branch(project):
    project.add("expand.yml", "templates/greet.yml")
    shown = project.cli("ci", "expand", ".pipelines/expand.yml", "--branch", "main")
    assert shown.returncode == 0, shown.stderr
    assert _scripts(yaml.safe_load(shown.stdout)) == ['echo "hello qa"', 'echo "tier prod"']


def test_lint_follows_templates(project):
    project.add("lint_follow.yml", commit=False)
    project.write("ci/unsafe-steps.yml", "steps:\n- script: echo $(Build.SourceBranchName)\n")
    linted = project.cli("ci", "lint", ".pipelines/lint_follow.yml")
    assert linted.returncode == 1  # today: 0, the template is never read
    assert "unsafe-steps.yml:2" in linted.stdout + linted.stderr


def test_lint_runs_the_schema_check(project):
    project.add("lint_schema.yml")
    linted = project.cli("ci", "lint", ".pipelines/lint_schema.yml")
    assert linted.returncode == 1  # today: 0
    assert "lint_schema.yml:3" in linted.stdout + linted.stderr
