"""PublishTestResults@2, PublishCodeCoverageResults@1/@2, PublishPipelineArtifact@1 and DownloadPipelineArtifact@2
as modules with their inputs declared (names, aliases, defaults as the task reference pages give them): what each
does is asserted on the run store (the recorded results, the artifact's files), and an input the task does not
have, or a value it cannot take here, refuses the run before any step runs, naming the file, line and step.

Azure: learn.microsoft.com azure/devops/pipelines/tasks/reference/publish-test-results-v2,
publish-code-coverage-results-v1/-v2, publish-pipeline-artifact-v1, download-pipeline-artifact-v2.
"""
from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.integration


def _runs(project, run) -> list[dict]:
    path = project.store().test_results_dir(run.run.id) / "runs.json"
    return json.loads(path.read_text()) if path.is_file() else []


def test_test_results_are_found_by_pattern_read_in_their_format_and_recorded_on_the_run(project):
    project.add("task_test_results.yml")
    run = project.run("task_test_results.yml")
    steps = run.steps()
    recorded = {r["title"]: r for r in _runs(project, run)}
    assert recorded["unit"]["tests"] == 2 and recorded["unit"]["failed"] == 1  # !**/skip/** left out
    assert [s.endswith("TEST-unit.xml") for s in recorded["unit"]["sources"]] == [True]
    assert recorded["NUnit_TestResults"]["tests"] == 2 and recorded["NUnit_TestResults"]["failed"] == 0
    kept = sorted(p.name for p in project.store().test_results_dir(run.run.id).glob("*.xml"))
    assert kept == ["001-TEST-unit.xml", "002-result.xml"]
    assert not project.store().artifacts_dir(run.run.id).exists()  # results are no artifact of the run
    assert steps["junit"] == "Succeeded"  # failTaskOnFailedTests defaults to false
    assert steps["none found"] == "Succeeded"  # no file: a warning unless failTaskOnMissingResultsFile
    assert steps["none found strict"] == "SucceededWithIssues"  # failed, continued on error


def test_fail_task_on_failed_tests_fails_the_step(project):
    project.add("task_test_results.yml")
    run = project.run("task_test_results.yml", params={"failOnFailed": "true"})
    assert run.steps()["junit"] == "Failed"
    assert run.result == "failed"
    assert run.steps()["nunit"] == "Skipped"  # the steps after it do not run (succeeded())


def test_an_unknown_input_refuses_the_run_naming_file_line_and_step(project):
    project.add("task_unknown_input.yml")
    run = project.run("task_unknown_input.yml")
    assert "task_unknown_input.yml:5" in run.error and "results" in run.error and "testResultFiles" in run.error
    assert "ran" not in run.out and not [r for r in run.records if r["kind"] == "step"]
    assert run.result == "failed"


def test_a_value_without_a_local_meaning_refuses_the_run(project):
    project.add("task_unsupported_value.yml")
    run = project.run("task_unsupported_value.yml")
    assert "task_unsupported_value.yml:5" in run.error and "JSON" in run.error
    assert "task_unsupported_value.yml:9" in run.error and "tags" in run.error
    assert not [r for r in run.records if r["kind"] == "step"]


def test_pipeline_artifacts_are_published_in_the_store_and_downloaded_by_pattern(project):
    project.add("task_pipeline_artifacts.yml")
    run = project.run("task_pipeline_artifacts.yml")
    store = project.store()
    root = store.artifacts_dir(run.run.id)
    assert (root / "dist" / "pkg.whl").read_text() == "wheel\n"  # path / artifactName aliases
    assert (root / "dist" / "sub" / "notes.txt").is_file()
    unnamed = [p for p in root.iterdir() if p.name != "dist"]
    assert len(unnamed) == 1 and (unnamed[0] / "report.txt").is_file()  # a name unique to the job
    assert run.out.get("wheels", "").split() == ["only-wheels/pkg.whl"]  # one artifact: straight into path
    assert run.out.get("all", "").split() == sorted(["all/dist/pkg.whl", "all/dist/sub/notes.txt",
                                                     f"all/{unnamed[0].name}/report.txt"])
    assert run.out.get("shortcut", "").split() == ["dist/sub/notes.txt"]  # download: patterns (steps-download.md)
    assert run.result == "succeeded"


def test_code_coverage_v1_reads_the_tool_it_is_told_and_keeps_the_report_directory(project):
    project.add("task_coverage_v1.yml")
    run = project.run("task_coverage_v1.yml")
    steps = run.steps()
    kept = sorted(p.name for p in project.store().coverage_dir(run.run.id).iterdir())
    assert kept == ["cobertura.xml", "index.html", "jacoco.xml"]
    assert steps["cobertura"] == "Succeeded" and steps["jacoco by default"] == "Succeeded"
    assert steps["wrong tool"] == "SucceededWithIssues"  # a JaCoCo file is not read as Cobertura
