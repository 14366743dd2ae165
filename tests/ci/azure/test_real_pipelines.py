"""Issue 23 item 8: pipelines in the shape of the real ones. MLOpsPython's CI runs as far as its cloud
tasks allow and stops at the first with the clear message; OpenAstronomy's and scikit-learn's template
styles compile to the jobs Azure shows (their names, display names and variables).

The real files themselves are checked by tools/ci_corpus.py against a corpus kept outside the repository
(/work/notes/ci-corpus.md); these are small pipelines written here with the same constructs.
"""
from __future__ import annotations

import pytest
import yaml

pytestmark = pytest.mark.integration


def test_mlopspython_ci_runs_its_code_quality_then_stops_at_the_azure_cli_task(project):
    project.configure(variable_groups={"devopsforai-aml-vg": {"variables": {"WORKSPACE_SVC_CONNECTION": "ws"}}})
    project.add("mlopspython_ci.yml", "templates/mlops-variables.yml", "templates/mlops-code-quality.yml")
    text = (project.root / ".pipelines" / "mlopspython_ci.yml").read_text().splitlines()
    line = next(i for i, row in enumerate(text, 1) if "AzureCLI@1" in row)
    run = project.run("mlopspython_ci.yml")
    assert run.out.get("lint") == "ran in diabetes_regression"  # today: killed by timeoutInMinutes: 0
    assert run.out.get("tests") == "ran"
    assert run.steps()["Publish test results"] == "Succeeded"
    refused = run.steps()["Publish Azure Machine Learning Pipeline"]
    assert refused == "Failed" and "never" not in run.out
    plan = " ".join(r["detail"] or "" for r in run.records if r["kind"] == "plan")
    assert "AzureCLI@1" in plan and f"mlopspython_ci.yml:{line}" in plan


def test_openastronomy_style_templates_compile_to_the_jobs_azure_shows(project):
    project.add("openastronomy_like.yml", "templates/oa-tox.yml")
    shown = project.cli("ci", "expand", ".pipelines/openastronomy_like.yml")
    assert shown.returncode == 0, shown.stderr
    jobs = yaml.safe_load(shown.stdout)["jobs"]
    assert [job.get("displayName") for job in jobs] == ["py39-test [linux]", "custom_name [macos]"]
    run = project.run("openastronomy_like.yml")
    expected = ["custom_name [macos]|3.10|cp310|--notest", "py39-test [linux]|3.9|cp39|--notest"]
    assert sorted(run.outs.get("job", [])) == expected


def test_scikit_learn_style_inserted_matrix_runs_every_leg(project):
    project.add("sklearn_like.yml", "templates/sk-posix.yml")
    shown = project.cli("ci", "expand", ".pipelines/sklearn_like.yml")
    assert shown.returncode == 0, shown.stderr
    linux = next(job for job in yaml.safe_load(shown.stdout)["jobs"] if job.get("job") == "Linux")
    assert sorted(linux["strategy"]["matrix"]) == ["pylatest_pip", "ubuntu_atlas"]
    run = project.run("sklearn_like.yml")
    assert sorted(run.outs.get("leg", [])) == ["pylatest_pip conda-pip-latest false", "ubuntu_atlas ubuntu true"]
