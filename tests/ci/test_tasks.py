"""The built-in tasks the local agent maps to local behaviour (tasks.py): test results and coverage published as
artifacts (failing only when asked), pipeline artifacts published once and downloaded from this run or from a
resource's run, and any other task refused by name. Pipelines run real bash steps in-process."""
from __future__ import annotations

from pathlib import Path

import pytest

from ml_service.ci.runner import tasks
from ml_service.ci.server.store import Store
from tests.ci.helpers import log_of, make_project, records, run_text


@pytest.fixture
def project(tmp_path, monkeypatch):
    return make_project(tmp_path, monkeypatch)


CASES = "<testcase name=\"ok\"/><testcase name=\"bad\"><failure/></testcase><testcase name=\"err\"><error/></testcase>"


def test_publish_test_results_fails_the_task_only_when_asked(project):
    base = ("steps:\n  - bash: mkdir -p r && echo '<testsuites><testsuite>" + CASES + "</testsuite>"
            "</testsuites>' > r/TEST-a.xml\n  - task: PublishTestResults@2\n    displayName: publish\n"
            "    inputs: {testResultsFiles: r/TEST-*.xml%s}\n")
    store, lenient = run_text(project, base % "")
    assert lenient.result == "succeeded"
    assert (store.test_results_dir(lenient.id) / "001-TEST-a.xml").is_file()  # recorded either way
    assert not (store.artifacts_dir(lenient.id) / "test-results").exists()  # test results are no artifact
    store, strict = run_text(project, base % ", failTaskOnFailedTests: 'true'")
    record = next(r for r in store.records(strict.id) if r["display"] == "publish")
    assert strict.result == "failed" and record["result"] == "Failed" and "3 tests, 2 failed" in record["detail"]
    store, quoted_false = run_text(project, base % ", failTaskOnFailedTests: 'false'")
    assert quoted_false.result == "succeeded"


def test_publish_code_coverage_copies_the_report_and_a_missing_one_warns(project):
    """A missing summary file is a warning (the task's NoCodeCoverage warning) unless failIfCoverageEmpty."""
    text = ("steps:\n  - bash: echo '<coverage line-rate=\"0.875\"/>' > cov.xml\n"
            "  - task: PublishCodeCoverageResults@2\n    displayName: cov\n    inputs: {summaryFileLocation: %s}\n")
    store, good = run_text(project, text % "cov.xml")
    assert good.result == "succeeded" and (store.coverage_dir(good.id) / "cov.xml").is_file()
    log = Path(next(r for r in store.records(good.id) if r["display"] == "cov")["log"]).read_text()
    assert "87.5% of lines" in log
    store, missing = run_text(project, text % "nowhere.xml")
    assert missing.result == "succeeded" and not store.coverage_dir(missing.id).exists()
    store, strict = run_text(project, text % "nowhere.xml, failIfCoverageEmpty: 'true'")
    assert strict.result == "failed"


@pytest.mark.parametrize("failures, errors, fail_on, result", [
    (0, 0, "true", "Succeeded"), (1, 0, "true", "Failed"), (0, 1, "true", "Failed"), (1, 0, "false", "Succeeded"),
    (1, 0, "True", "Failed"),
])
def test_failed_tests_fail_the_task_from_one_failure_when_asked(project, failures, errors, fail_on, result):
    cases = ("<testcase name=\"a\"/>" * 3 + "<testcase name=\"f\"><failure/></testcase>" * failures
             + "<testcase name=\"e\"><error/></testcase>" * errors)
    text = (f"steps:\n  - bash: mkdir -p r && echo '<testsuite>{cases}</testsuite>' > r/TEST-x.xml\n"
            f"  - task: PublishTestResults@2\n    displayName: publish\n"
            f"    inputs: {{testResultsFiles: r/TEST-*.xml, failTaskOnFailedTests: '{fail_on}'}}\n")
    store, run = run_text(project, text)
    assert records(store, run.id)["publish"]["result"] == result


def test_an_artifact_is_published_once_and_downloaded_into_the_workspace(project):
    text = ("steps:\n  - bash: mkdir -p out && echo model-bytes > out/model.bin\n"
            "  - publish: out\n    artifact: model\n    displayName: publish\n"
            "  - download: current\n    artifact: model\n    displayName: download\n"
            "  - bash: cat \"$(Pipeline.Workspace)/model/model.bin\"\n    displayName: read\n"
            "  - publish: out\n    artifact: model\n    displayName: again\n    condition: always()\n"
            "  - task: PublishPipelineArtifact@1\n    displayName: as a task\n    condition: always()\n"
            "    inputs: {targetPath: out/model.bin, artifact: single}\n")
    store, run = run_text(project, text)
    found = records(store, run.id)
    assert (found["publish"]["result"], found["download"]["result"], found["read"]["result"]) == \
        ("Succeeded", "Succeeded", "Succeeded")
    assert "model-bytes" in log_of(store, run.id, "read")
    assert found["again"]["result"] == "Failed" and "already published" in found["again"]["detail"]
    assert (store.artifacts_dir(run.id) / "model" / "model.bin").read_text() == "model-bytes\n"
    assert (store.artifacts_dir(run.id) / "single" / "model.bin").is_file()


def test_an_artifact_of_a_resource_run_is_downloaded_by_its_alias(project, tmp_path):
    store = Store(project.state_dir / "ci")
    source = store.create_run("up", "up.yml", "Manual", "main", "c", "dev", {}, str(project.root))
    (store.artifacts_dir(source) / "model").mkdir(parents=True)
    (store.artifacts_dir(source) / "model" / "m.json").write_text("{}")
    variables = {"Pipeline.Workspace": str(tmp_path / "ws"), "System.DefaultWorkingDirectory": str(project.root)}
    ctx = {"store": store, "run_id": 99, "variables": variables, "resources": {"up": {"runID": source}}}
    assert "downloaded artifact(s) model" in tasks.run_task("download", {"download": "up", "artifact": "model"}, {},
                                                            ctx)
    assert (tmp_path / "ws" / "up" / "model" / "m.json").is_file()
    with pytest.raises(tasks.TaskError, match="no pipeline resource 'other'"):
        tasks.run_task("download", {"download": "other"}, {}, ctx)
    with pytest.raises(tasks.TaskError, match=f"run {source} has no artifact 'nope'"):
        tasks.run_task("download", {"download": "up", "artifact": "nope"}, {}, ctx)


@pytest.mark.parametrize("name, why", [("AzureCLI@2", "needs Azure"),
                                       ("PublishTestResults@1", "is not supported locally"),
                                       ("Gradle@3", "is not supported locally")])
def test_any_other_task_fails_naming_it(project, name, why):
    store, run = run_text(project, f"steps:\n  - task: {name}\n    displayName: other\n")
    found = records(store, run.id)["other"]
    assert found["result"] == "Failed" and f"task {name} {why}" in found["detail"]
    assert run.result == "failed"


def test_extract_files_refuses_a_zip_holding_a_path_outside_the_destination_and_extracts_nothing(tmp_path):
    import zipfile

    from ml_service.ci.runner.tasks import extract_files
    from ml_service.ci.runner.tasks.inputs import TaskError

    with zipfile.ZipFile(tmp_path / "hostile.zip", "w") as packed:
        packed.writestr("fine.txt", "fine")
        packed.writestr("../outside.txt", "escaped")
    with zipfile.ZipFile(tmp_path / "good.zip", "w") as packed:
        packed.writestr("a/fine.txt", "fine")
    ctx = {"variables": {"System.DefaultWorkingDirectory": str(tmp_path)}, "path": lambda text: tmp_path / text}
    with pytest.raises(TaskError, match="outside.txt"):
        extract_files.run({"archiveFilePatterns": "hostile.zip", "destinationFolder": "out"}, ctx)
    assert not list((tmp_path / "out").rglob("*")) and not (tmp_path / "outside.txt").exists()
    extract_files.run({"archiveFilePatterns": "good.zip", "destinationFolder": "out"}, ctx)
    assert (tmp_path / "out" / "a" / "fine.txt").read_text() == "fine"


def test_delete_files_leaves_dot_files_unless_asked_or_named(tmp_path):
    from ml_service.ci.runner.tasks import delete_files

    ctx = {"variables": {"System.DefaultWorkingDirectory": str(tmp_path)}, "path": lambda text: tmp_path / text}
    trash = tmp_path / "trash"
    for options, left in (({}, [".keep"]), ({"RemoveDotFiles": "true"}, []),
                          ({"Contents": "**/.keep"}, ["a.txt", "b.txt"])):
        trash.mkdir(exist_ok=True)
        for name in ("a.txt", ".keep", "b.txt"):
            (trash / name).write_text(name)
        delete_files.run({"SourceFolder": "trash", "Contents": "**", **options}, ctx)
        assert sorted(p.name for p in trash.iterdir()) == left, options


@pytest.mark.parametrize("path, matched", [("a/b/app.txt", True), ("a/b/app.log", True), ("app.txt", True),
                                           ("a/b/app.csv", False), ("a/b/app.{txt", False), ("a/b/app.", False)])
def test_a_file_tasks_pattern_takes_either_alternative_of_its_braces(path, matched):
    from ml_service.ci.runner.tasks.minimatch import matches

    assert matches(path, ["**/*.{txt,log}"]) is matched
