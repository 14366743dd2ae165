"""##vso logging commands as the agent reads and applies them (hidden-probe sweep, issue 23).

Azure: microsoft/azure-pipelines-agent src/Agent.Sdk/CommandStringConvertor.cs (%3B ; %0D %0A %5D ] and %AZP25 %
unescaped in properties and message; the message is not trimmed), src/Agent.Worker/TaskCommandExtension.cs
(task.complete merges its result with TaskResultUtil.MergeTaskResults: the worse wins, and an exit code 1 still
fails the step), TaskRestrictionsChecker.cs / TaskRestrictionsExtension.cs (a step's target.settableVariables:
`none` or minimatch patterns, case-insensitive; a refused variable is not set, with a warning);
docs/pipelines/scripts/logging-commands.md.
"""
from __future__ import annotations

import pytest

pytestmark = pytest.mark.integration


def test_escaped_values_and_untrimmed_messages(project):
    project.add("vso_commands.yml")
    run = project.run("vso_commands.yml")
    assert run.out["multi"] == "a;b]c%d"  # before: a%3Bb%5Dc%AZP25d
    assert run.out["padded"] == "[  p  ]"  # before: [p]


def test_task_complete_never_hides_a_worse_result(project):
    project.add("vso_commands.yml")
    run = project.run("vso_commands.yml")
    steps = run.steps()
    # continueOnError turns a failed step into SucceededWithIssues: both steps failed, as on Azure
    assert steps["completeThenExit"] == "SucceededWithIssues"  # before: Succeeded (exit code 1 ignored)
    assert steps["failedThenSucceeded"] == "SucceededWithIssues"  # before: Succeeded (the last one won)


def test_settable_variables_restrict_what_a_step_may_set(project):
    project.add("vso_commands.yml")
    run = project.run("vso_commands.yml")
    assert run.out["allowed"] == "[yes]"
    assert run.out["blocked"] == "[]"  # before: [yes]
    assert run.out["none1"] == "[]"  # before: [yes]
    assert run.steps()["restricted"] == "Succeeded"  # a refused variable is a warning, not a failure


def test_artifact_upload_publishes_what_a_later_job_downloads(project):
    """The agent's ArtifactUploadCommand (src/Agent.Worker/Build/ArtifactCommandExtension.cs): the file or folder
    becomes the run's artifact `artifactname` (containerfolder defaults to it)."""
    project.add("vso_artifact.yml")
    run = project.run("vso_artifact.yml")
    assert run.out.get("one") == "one" and run.out.get("two") == "two"  # before: ignored, the download failed
    assert run.result == "succeeded"


def test_build_tags_fire_the_completion_triggers_that_ask_for_them(project):
    """##vso[build.addbuildtag] tags the run (the agent's BuildAddBuildTagCommand); a resources.pipelines trigger
    with `tags:` fires when the source run carries every listed tag (resources-pipelines-pipeline-trigger.md)."""
    project.add("tag_producer.yml", "tag_consumer.yml", "tag_consumer_other.yml")
    run = project.run("tag_producer.yml")
    assert run.out.get("producer") == "ran"
    fired = [project.result(project.store(), r).out.get("consumer") for r in run.triggered]
    assert fired == ["tagged"]  # before: no run (a tags filter never matched); "signed" is missing for the other
