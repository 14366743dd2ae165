"""checkout options as Azure does them (yaml-schema steps-checkout.md; the agent's GitSourceProvider): fetchDepth
N makes a shallow clone of the last N commits (0: the whole history), submodules true / recursive checks them out,
sparse checkouts leave out what they do not name; a value Azure does not take, or lfs: true without git-lfs here,
refuses the run before it starts, naming the option."""
from __future__ import annotations

import subprocess

import pytest

from tests.ci.azure.conftest import git

pytestmark = pytest.mark.integration


def _with_submodule(project, other_repo) -> None:
    git(project.root, "-c", "protocol.file.allow=always", "submodule", "add", "-q", str(other_repo), "libs/tool")
    project.commit("tool as a submodule")
    project.commit("a second commit")


def test_fetch_depth_makes_a_shallow_clone_and_submodules_are_checked_out(project, other_repo):
    _with_submodule(project, other_repo)
    project.add("checkout_options.yml")
    run = project.run("checkout_options.yml")
    assert run.out.get("shallow") == "true" and run.out.get("count") == "1"  # today: the whole history
    assert run.out.get("tool") == "main"  # the submodule's commit; today: an empty folder
    assert run.result == "succeeded"


def test_fetch_depth_zero_is_the_whole_history_and_submodules_false_leaves_them_out(project, other_repo):
    _with_submodule(project, other_repo)
    project.add("checkout_options.yml")
    commits = git(project.root, "rev-list", "--count", "HEAD").strip()
    run = project.run("checkout_options.yml", params={"depth": "0", "submodules": "false"})
    assert run.out.get("shallow") == "false" and run.out.get("count") == commits
    assert run.out.get("tool") == "missing"


def test_a_shallow_clone_still_holds_the_working_trees_uncommitted_changes(project, other_repo):
    _with_submodule(project, other_repo)
    project.add("checkout_options.yml")
    project.write("dirty.txt", "uncommitted\n", commit=False)  # `mlops ci run` of a working tree
    run = project.run("checkout_options.yml", params={"depth": "2"})
    assert run.out.get("shallow") == "true" and run.out.get("count") == "2"
    assert run.out.get("dirty") == "uncommitted"


def test_fetch_depth_on_a_repository_resource(project, other_repo):
    project.configure(repositories={"tools": str(other_repo)})
    project.add("checkout_other_shallow.yml")
    run = project.run("checkout_other_shallow.yml")
    assert run.out.get("shallow") == "true" and run.out.get("count") == "1" and run.out.get("tool") == "release"


def test_sparse_checkout_leaves_out_what_it_does_not_name(project):
    project.write("keep/a.txt", "a\n", commit=False)
    project.write("drop/b.txt", "b\n", commit=False)
    project.write("drop/c.log", "c\n", commit=False)
    project.add("checkout_sparse.yml")
    run = project.run("checkout_sparse.yml")
    cone = run.out.get("cone", "").split()
    assert "./keep/a.txt" in cone and "./mlops.yml" in cone and not [f for f in cone if f.startswith("./drop")]
    assert run.out.get("patterns", "").split() == ["./drop/b.txt"]


def test_lfs_without_git_lfs_is_refused_naming_the_option_when_the_repository_tracks_lfs_files(project):
    project.write(".gitattributes", "*.bin filter=lfs diff=lfs merge=lfs -text\n")
    project.add("checkout_lfs.yml")
    run = project.run("checkout_lfs.yml")
    if subprocess.run(["git", "lfs", "version"], capture_output=True).returncode == 0:  # git-lfs here: it runs
        assert run.out.get("ran") == "yes"
    else:
        assert "checkout_lfs.yml:3" in run.error and "lfs" in run.error and "ran" not in run.out


def test_lfs_in_a_repository_without_lfs_files_fetches_nothing_and_runs(project):
    """`git lfs pull` has nothing to fetch where no .gitattributes names filter=lfs: the same files either way."""
    project.add("checkout_lfs.yml")
    run = project.run("checkout_lfs.yml")
    assert run.out.get("ran") == "yes" and run.result == "succeeded"


def test_an_option_value_azure_does_not_take_is_refused(project):
    project.add("checkout_bad_option.yml")
    run = project.run("checkout_bad_option.yml")
    assert "fetchDepth" in run.error and "submodules" in run.error and "checkout_bad_option.yml:3" in run.error
    assert "ran" not in run.out and not [r for r in run.records if r["kind"] == "step"]
