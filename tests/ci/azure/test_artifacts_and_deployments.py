"""Artifacts in deployment jobs, `download: none`, DownloadPipelineArtifact@2 `source: specific`, and the
runOnce lifecycle hooks.

Azure: yaml-schema steps-download.md ("All available artifacts from the current pipeline and from the
associated pipeline resources are automatically downloaded in deployment jobs ... To prevent downloads,
specify download: none"; artifacts of the current run go to $(Pipeline.Workspace)/<artifact>);
jobs-deployment-strategy-run-once.md (the deploy hook, and the hooks preDeploy, routeTraffic,
postRouteTraffic, on: failure / on: success); steps-checkout.md (no checkout step: self for a job, none
for a deployment job); Tasks/DownloadPipelineArtifactV2/task.json (source current|specific, project,
pipeline, runVersion latest|latestFromBranch|specific, runId, artifact, path).
"""
from __future__ import annotations

import pytest

pytestmark = pytest.mark.integration


def test_download_none_stops_the_automatic_download(project):
    project.add("download_none.yml")
    run = project.run("download_none.yml")
    assert run.out.get("none_sees") == "absent"  # today: 'none' is read as a pipeline resource and fails
    assert run.out.get("plain") == "ran"  # download: none in a plain job: nothing to stop


def test_a_deploy_hook_downloads_the_runs_artifacts(project):
    project.add("download_none.yml")
    run = project.run("download_none.yml")
    assert run.out.get("auto_sees") == "built"  # today: nothing is downloaded


def test_a_deployment_job_checks_out_nothing_unless_asked(project):
    project.add("download_none.yml")
    run = project.run("download_none.yml")
    assert run.out.get("deploy_sources") == "empty"  # today: the live working tree
    assert run.result == "succeeded"


def test_download_pipeline_artifact_from_a_specific_pipeline(project):
    project.add("producer.yml", "download_specific.yml")
    produced = project.run("producer.yml")
    assert produced.result == "succeeded"
    run = project.run("download_specific.yml")
    assert run.out.get("stamp") == f"from-run-{produced.run.id}"  # today: read as this run's artifact
    assert run.result == "succeeded"


def test_runonce_hooks_run_in_order_and_on_failure_after_a_failed_hook(project):
    project.add("runonce_hooks.yml")
    run = project.run("runonce_hooks.yml")
    assert run.outs.get("hook") == ["preDeploy", "deploy", "routeTraffic", "postRouteTraffic", "onFailure"]
    assert run.result == "failed"  # today: refused ("unknown key 'True'")
