"""Predefined variables Azure sets and the engine lacked; a value built from them is not refused.

Azure: docs/pipelines/build/variables.md (Build.SourceVersionMessage: the first line of the commit message,
at most 200 characters; System.CollectionUri / System.TeamFoundationCollectionUri; Build.Repository.Uri;
Agent.Id; Build.RequestedForEmail; System.PullRequest.* when Build.Reason is PullRequest); Agent.JobStatus
is the job's result so far (agent Agent.Worker/StepsRunner.cs). Macro names ignore case, so MLOpsPython's
$(SYSTEM.COLLECTIONURI) is System.CollectionUri.
"""
from __future__ import annotations

import pytest

from tests.ci.azure.conftest import EMAIL, git

pytestmark = pytest.mark.integration


def test_the_agent_variables_a_step_reads(project):
    project.add("predefined.yml", commit=False)
    git(project.root, "add", "-A")
    git(project.root, "commit", "-q", "-m", "Fix the thing\n\nA longer body that is not part of it.")
    run = project.run("predefined.yml")
    assert run.out["message"] == "Fix the thing"  # today: $(Build.SourceVersionMessage) left as written
    assert run.out["collection"] and "$(" not in run.out["collection"]
    assert run.out["teamFoundation"] == run.out["collection"]
    assert run.out["repoUri"] and "$(" not in run.out["repoUri"]
    assert run.out["agentId"] and "$(" not in run.out["agentId"]
    assert run.out["requestedForEmail"] == EMAIL


def test_agent_job_status_follows_the_job(project):
    project.add("predefined.yml")
    run = project.run("predefined.yml")
    assert run.out["status1"] == "Succeeded" and run.out["envStatus1"] == "Succeeded"
    assert run.out["status2"] == "SucceededWithIssues"


def test_a_link_built_from_upper_case_predefined_variables_is_not_refused(project):
    project.add("predefined_uri.yml")
    run = project.run("predefined_uri.yml")
    uri = run.out.get("uri", "")  # today: the literal $(SYSTEM.COLLECTIONURI) trips the injection guard
    assert uri.endswith(f"/_build/results?buildId={run.run.id}") and "$(" not in uri
    assert run.result == "succeeded"


def test_pull_request_variables_in_a_pull_request_run(project):
    project.add("pr_vars.yml")
    run = project.run("pr_vars.yml", reason="PullRequest", branch="feature/x")
    assert run.out["prSource"] == "refs/heads/feature/x"
    assert run.out["prTarget"] == "refs/heads/main"
    assert run.out["prId"] and "$(" not in run.out["prId"]


def test_every_job_has_its_own_job_id(project):
    """System.JobId: "A unique identifier for a single attempt of a single job" (docs/pipelines/build/variables.md);
    before: undefined, so $(System.JobId) ran as a command."""
    import uuid

    project.add("job_id.yml")
    run = project.run("job_id.yml")
    ids = [run.out.get("A", ""), run.out.get("B", "")]
    assert all(str(uuid.UUID(i)) == i for i in ids) and ids[0] != ids[1]
