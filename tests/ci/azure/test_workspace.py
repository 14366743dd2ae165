"""Issue 23 item 2: steps run in their own checkout under the run's work folder, never in the user's working tree.

Azure: the agent's layout per pipeline, $(Pipeline.Workspace)/{a,b,s,TestResults}
(Agent.Worker/Build/TrackingConfig.cs, Constants.Build.Path: a = Build.ArtifactStagingDirectory,
b = Build.BinariesDirectory, s = Build.SourcesDirectory), System.DefaultWorkingDirectory = the sources
(docs/pipelines/build/variables.md), the working directory of a script step; the checkout is a clean copy
of the commit being built (Build.SourceVersion). Microsoft's go.yml starter moves every file of the
sources folder (`mv !(gopath) ...`): on an agent that harms nothing but the checkout.

What the checkout holds (ml_service/ci/runner/sources.py, docs/ci.md): a run of a given commit (the git hook's
pushed commit) that commit, clean; a run of a working tree (`mlops ci run`, `make run`) its HEAD plus its
uncommitted changes (not what git ignores), the run's state saying so; the user's index, HEAD and files
are left alone.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.ci.azure.conftest import git

pytestmark = pytest.mark.integration

REPOSITORY = Path(__file__).resolve().parents[3]  # this checkout: `python -m ml_service.cli` in a step imports it


def dirty_project(project):
    """committed.txt committed; uncommitted.txt untracked; ignored.txt ignored by git."""
    project.write(".gitignore", ".mlops/\nignored.txt\n", commit=False)
    project.add("workspace.yml", commit=False)
    project.write("committed.txt", "in the commit\n")
    project.write("uncommitted.txt", "only in the working tree\n", commit=False)
    project.write("ignored.txt", "ignored by git\n", commit=False)


def test_a_run_of_a_working_tree_checks_out_its_commit_and_its_uncommitted_changes_elsewhere(project):
    dirty_project(project)
    head = git(project.root, "rev-parse", "HEAD").strip()
    before = git(project.root, "status", "--porcelain")
    run = project.run("workspace.yml")
    assert run.result == "succeeded"
    sources = Path(run.out["sources"])
    assert sources != project.root and project.root / ".mlops" / "ci" / "work" in sources.parents
    assert (run.out["committed"], run.out["uncommitted"], run.out["ignored"], run.out["state"]) == \
        ("yes", "yes", "no", "no")
    assert run.out["head"] == head  # at HEAD, the uncommitted change shown as a change: `git status` says so
    assert "A  uncommitted.txt" in run.out["changes"].split(",")
    checkout = run.run.state["checkout"]
    assert checkout["commit"] == head and checkout["tree"] != git(project.root, "rev-parse", "HEAD^{tree}").strip()
    # the user's working tree, index and HEAD as they were: nothing written, nothing staged
    assert git(project.root, "status", "--porcelain") == before
    assert git(project.root, "rev-parse", "HEAD").strip() == head
    assert not (project.root / "created-by-step.txt").exists()
    assert (project.root / "committed.txt").read_text() == "in the commit\n"


def test_a_run_of_a_given_commit_holds_that_commit_only(project):
    """As the git hook queues a push: the commit named, clean, whatever the working tree holds."""
    from ml_service.ci.server import service

    dirty_project(project)
    head = git(project.root, "rev-parse", "HEAD").strip()
    settings = project.settings()
    store = service.open_store(settings)
    run_id = service.queue(settings, store, project.root / ".pipelines" / "workspace.yml", "IndividualCI",
                           branch="main", commit=head)
    service.execute(settings, store, run_id)
    run = project.result(store, run_id)
    assert run.result == "succeeded"
    assert (run.out["committed"], run.out["uncommitted"], run.out["ignored"]) == ("yes", "no", "no")
    assert run.out["head"] == head and run.out["changes"] == ""
    assert run.run.state["checkout"] == {"commit": head}


def test_a_push_runs_on_the_pushed_commit_not_on_the_working_tree_beside_it(project, tmp_path):
    """The git hook's runs (`git push mlops`): the pushed commit, clean."""
    from ml_service.ci.server import hooks, service

    dirty_project(project)
    head = git(project.root, "rev-parse", "HEAD").strip()
    remote = tmp_path / "remote.git"
    git(tmp_path, "clone", "-q", "--bare", str(project.root), str(remote))
    settings = project.settings()
    ran = hooks.on_push(settings, remote, f"{hooks.ZERO} {head} refs/heads/main\n")
    store = service.open_store(settings)
    assert [store.get_run(r).pipeline for r in ran] == ["workspace"]
    run = project.result(store, ran[0])
    assert (run.result, run.out["head"], run.out["changes"]) == ("succeeded", head, "")
    assert (run.out["committed"], run.out["uncommitted"], run.out["ignored"]) == ("yes", "no", "no")
    assert Path(run.out["sources"]) == store.directory / "work" / str(ran[0]) / "s"


def test_the_work_folder_is_laid_out_as_on_an_agent(project):
    dirty_project(project)
    run = project.run("workspace.yml")
    workspace = Path(run.out["workspace"])
    assert Path(run.out["sources"]) == workspace / "s"
    assert Path(run.out["staging"]) == workspace / "a"
    assert Path(run.out["binaries"]) == workspace / "b"
    assert run.out["default"] == run.out["local"] == run.out["sources"]
    assert Path(run.out["cwd"]).resolve() == Path(run.out["sources"]).resolve()
    assert (workspace / "s" / "created-by-step.txt").is_file()  # what the step wrote is in its own checkout


def test_what_a_step_does_to_its_checkout_leaves_the_working_tree_and_the_engine_alone(project):
    project.add("workspace_move.yml")
    project.write("committed.txt", "in the commit\n")
    project.write("uncommitted.txt", "only in the working tree\n", commit=False)
    run = project.run("workspace_move.yml")  # before: the engine died, its .mlops/ moved with the rest
    assert run.out.get("moved") == "done"
    assert run.out.get("after_move") == "still running"
    assert run.out.get("git_top") == "none"  # git in the gutted checkout does not find the user's repository
    assert run.result == "succeeded"
    assert not (project.root / "created-by-step.txt").exists()
    assert not (project.root / "gopath").exists()
    for name in ("mlops.yml", "committed.txt", "uncommitted.txt", ".git", ".mlops/ci/runs.db"):
        assert (project.root / name).exists(), name


def test_each_job_starts_clean_and_checkout_none_and_path_are_as_on_an_agent(project):
    project.add("workspace_jobs.yml")
    project.write("committed.txt", "in the commit\n")
    run = project.run("workspace_jobs.yml")
    assert run.result == "succeeded", run.records
    assert (run.out["leftover"], run.out["second_committed"]) == ("no", "in the commit")
    workspace = Path(run.out["moved_workspace"])
    assert (run.out["nothing_files"], Path(run.out["nothing_cwd"])) == ("0", workspace / "s")
    moved = workspace / "src" / "project"
    assert Path(run.out["moved_sources"]) == Path(run.out["moved_default"]) == Path(run.out["moved_local"]) == moved
    assert Path(run.out["moved_cwd"]).resolve() == moved.resolve()
    assert run.out["moved_committed"] == "in the commit"


def test_mlops_in_a_step_acts_on_the_checkout_and_finds_the_engines_workspace(project, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(REPOSITORY))  # this checkout's ml_service, as the engine's own
    project.add("workspace_mlops.yml")
    run = project.run("workspace_mlops.yml")
    assert run.result == "succeeded", run.logs[-2000:]
    workspace = project.store().work_dir(run.run.id)
    assert Path(run.out["root"]) == workspace / "s"
    assert Path(run.out["state"]) == project.root / ".mlops"
    assert run.out["tracking"] == f"sqlite:///{project.root / '.mlops' / 'mlflow.db'}"
    assert run.out["found_run"] == "yes"  # `mlops ci show` of the run itself: the runs store is the engine's


def test_completed_runs_keep_their_work_folders_only_as_long_as_the_retention_rule_says(project):
    project.configure(keep_work=1)
    project.add("workspace_move.yml")
    first = project.run("workspace_move.yml")
    second = project.run("workspace_move.yml")
    work = project.root / ".mlops" / "ci" / "work"
    assert (first.result, second.result) == ("succeeded", "succeeded")
    assert sorted(os.listdir(work)) == [str(second.run.id)]  # the older run's folder went, the newest stayed
    assert (work / str(second.run.id) / "s" / "gopath").is_dir()
    assert all(Path(r["log"]).is_file() for r in first.records if r["log"])  # its logs stay
