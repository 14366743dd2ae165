"""Issue 23 item 3: repository resources. checkout: and template: ...@alias resolve through mlops.yml
(ci.repositories: alias or project/repo -> a local path or git URL), cloned at the ref the resource
names; an unmapped repository is a clear error before the run.

Azure: yaml-schema resources-repositories-repository.md (ref defaults to refs/heads/main), steps-checkout.md
(self, none, a repository resource, or the inline git://project/repo@ref), docs/pipelines/repos/
multi-repo-checkout.md and the agent (Agent.Sdk/Util/RepositoryUtil.cs GetCloneDirectory: the folder is
the repository name's last segment; with several checkouts each goes to $(Build.SourcesDirectory)/<name>,
self included), docs/pipelines/process/templates.md "Use other repositories".
"""
from __future__ import annotations

import pytest

pytestmark = pytest.mark.integration


def test_checkout_of_a_repository_resource_clones_it_at_its_ref(project, other_repo):
    project.configure(repositories={"tools": str(other_repo)})
    project.add("checkout_repos.yml")
    run = project.run("checkout_repos.yml")
    assert run.out.get("tool") == "release"  # the resource's ref; today: prints Succeeded, fetches nothing
    assert run.out.get("self") == "yes"  # self in s/<repository name> when several are checked out
    assert run.result == "succeeded"


def test_inline_git_checkout_resolves_project_and_repository(project, other_repo):
    project.configure(repositories={"Shared/tools": str(other_repo)})
    project.add("checkout_git.yml")
    run = project.run("checkout_git.yml")
    assert run.out.get("tool") == "release"


def test_a_template_from_a_repository_resource(project, other_repo):
    project.configure(repositories={"tools": str(other_repo)})
    project.add("template_repo.yml")
    run = project.run("template_repo.yml")
    assert run.out.get("template") == "from-release caller"  # today: "file not found"
    assert run.result == "succeeded"


def test_an_unmapped_repository_is_refused_before_the_run_naming_it_the_file_and_line(project):
    project.add("checkout_unmapped.yml")
    text = (project.root / ".pipelines" / "checkout_unmapped.yml").read_text().splitlines()
    line = next(i for i, row in enumerate(text, 1) if "checkout: nowhere" in row)
    run = project.run("checkout_unmapped.yml")
    assert "ran" not in run.out  # nothing ran; today: the first step runs, the checkout "succeeds"
    assert run.result == "failed"
    assert "nowhere" in run.error and f"checkout_unmapped.yml:{line}" in run.error
