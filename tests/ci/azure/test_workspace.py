"""Issue 23 item 2: steps run in their own checkout under the run's work folder, never in the user's
working tree, and a step's PATH holds nothing of mlops's own environment unless the pipeline asks.

Azure: the agent's layout per pipeline, $(Pipeline.Workspace)/{a,b,s,TestResults}
(Agent.Worker/Build/TrackingConfig.cs, Constants.Build.Path: a = Build.ArtifactStagingDirectory,
b = Build.BinariesDirectory, s = Build.SourcesDirectory), System.DefaultWorkingDirectory = the sources
(docs/pipelines/build/variables.md), the working directory of a script step; the checkout is a clean copy
of the commit being built (Build.SourceVersion). Microsoft's go.yml starter moves every file of the
sources folder (`mv !(gopath) ...`): on an agent that harms nothing but the checkout.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


def run_workspace(project):
    """Commit committed.txt, leave uncommitted.txt uncommitted, run workspace.yml."""
    project.add("workspace.yml", commit=False)
    project.write("committed.txt", "in the commit\n")
    project.write("uncommitted.txt", "only in the working tree\n", commit=False)
    return project.run("workspace.yml")


def test_the_sources_are_a_checkout_of_the_commit_in_the_runs_own_folder(project):
    run = run_workspace(project)
    sources = Path(run.out["sources"])
    assert sources.resolve() != project.root.resolve()  # today: the live working tree
    assert run.out["committed"] == "yes"
    assert run.out["uncommitted"] == "no"
    assert run.out["state"] == "no"  # the engine's .mlops/ is not in the step's tree


def test_the_work_folder_is_laid_out_as_on_an_agent(project):
    run = run_workspace(project)
    workspace = Path(run.out["workspace"])
    assert Path(run.out["sources"]) == workspace / "s"
    assert Path(run.out["staging"]) == workspace / "a"
    assert Path(run.out["binaries"]) == workspace / "b"
    assert run.out["default"] == run.out["sources"]
    assert Path(run.out["cwd"]).resolve() == Path(run.out["sources"]).resolve()


def test_what_a_step_does_to_its_checkout_leaves_the_working_tree_and_the_engine_alone(project):
    project.add("workspace_move.yml")
    run = project.run("workspace_move.yml")  # today the engine dies: its .mlops/ is moved with the rest
    assert run.out.get("moved") == "done"
    assert run.out.get("after_move") == "still running"
    assert run.result == "succeeded"
    assert not (project.root / "created-by-step.txt").exists()
    assert not (project.root / "gopath").exists()
    for name in ("mlops.yml", "committed.txt", "uncommitted.txt", ".git"):
        assert (project.root / name).exists(), name


def test_a_steps_path_holds_nothing_of_the_engines_environment(project):
    run = run_workspace(project)
    engine = Path(sys.prefix).resolve()
    entries = [Path(p).resolve() for p in run.out["path"].split(os.pathsep) if p]
    assert not any(p == engine or engine in p.parents for p in entries)  # today: the venv's bin comes first
    python3 = run.out["python3"]
    assert python3 == "none" or engine not in Path(python3).resolve().parents
