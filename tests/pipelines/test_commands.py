"""`mlops pipeline run` in-process (cli/pipeline.py): --output-json names the version registered by this
run only (a reused registration triggers no second release), --no-reuse runs every step, a failed run exits 1."""
from __future__ import annotations

import json

import pytest

from ml_service.cli import main

pytestmark = pytest.mark.integration
HERE = "tests.pipelines.test_commands"


def registers(inputs, params, output_dir, context):
    """A step that 'registers' the version it is given."""
    return {"values": {"registered_version": str(params["version"])}, "outcome": f"registered v{params['version']}"}


def test_output_json_names_only_a_version_registered_by_this_run(workspace, tmp_path):
    path = tmp_path / "p.yml"
    path.write_text(f"name: cmd-test\nsteps:\n  register: {{function: '{HERE}:registers', params: {{version: 5}}}}\n")
    out = tmp_path / "out.json"
    assert main(["pipeline", "run", str(path), "--output-json", str(out)]) == 0
    first = json.loads(out.read_text())
    assert (first["status"], first["registered_version"], first["outcome"]) == ("FINISHED", "5", "registered v5")
    assert (first["model_name"], first["project"]) == (workspace.model_name, workspace.project)
    assert main(["pipeline", "run", str(path), "--output-json", str(out)]) == 0  # reused: nothing new to release
    assert json.loads(out.read_text())["registered_version"] is None
    assert main(["pipeline", "run", str(path), "--no-reuse", "--output-json", str(out)]) == 0
    assert json.loads(out.read_text())["registered_version"] == "5"


def test_a_failed_run_exits_1_and_says_so_in_the_json(workspace, tmp_path):
    path = tmp_path / "p.yml"
    path.write_text("name: cmd-fail\nsteps: {broken: {function: 'tests.support.steps:raise_error'}}\n")
    out = tmp_path / "out.json"
    assert main(["pipeline", "run", str(path), "--output-json", str(out)]) == 1
    failed = json.loads(out.read_text())
    assert (failed["status"], failed["registered_version"]) == ("FAILED", None)
    assert failed["error"] == "step 'broken' failed: ValueError: the step found something wrong"
    assert main(["pipeline", "run", str(path), "--version", "2"]) == 2  # a version of a file makes no sense
    assert main(["pipeline", "run", str(path), "--param", "nope=1"]) == 2


def names_its_data(inputs, params, output_dir, context):
    """A step whose outcome is the $data it was given (the project's built-in parameter)."""
    return {"values": {}, "outcome": f"data={params['data']}"}


def test_a_published_pipeline_of_another_project_runs_as_that_project(workspace, tmp_path):
    """Run by name from the default project, a pipeline another project published runs with that project's
    settings: its model, its $data, its run tagged with it (cli/pipeline.py selects chosen.project)."""
    other = workspace.select("breast_cancer_classification")
    assert other.project != workspace.project  # the default project is the first of mlops.yml
    path = tmp_path / "p.yml"
    path.write_text(f"name: other-project\nsteps:\n  s: {{function: '{HERE}:names_its_data', "
                    "params: {data: $data}}\n")
    from ml_service.pipelines.definition import load_pipeline
    from ml_service.pipelines.publish import publish

    publish(other, load_pipeline(path))
    out = tmp_path / "out.json"
    assert main(["pipeline", "run", "other-project", "--output-json", str(out)]) == 0
    ran = json.loads(out.read_text())
    assert (ran["project"], ran["model_name"]) == (other.project, other.model_name)
    assert ran["outcome"] == f"data={other.model.builtin_params(other.root)['data']}"
    from ml_service.workspace import tracking

    run = tracking.connect(workspace).get_run(ran["run_id"])
    assert run.data.tags["mlops.model.project"] == other.project
    path.write_text(path.read_text() + "# v2, published by the default project: it runs as that one\n")
    publish(workspace, load_pipeline(path))
    assert main(["pipeline", "run", "other-project", "--output-json", str(out)]) == 0
    assert json.loads(out.read_text())["project"] == workspace.project
