"""`git push` triggers (hooks.py), in-process on real git repositories: a push to main runs the pipelines whose
`trigger:` matches (branch and path filters), a push to another branch runs those whose `pr:` matches main as
the target, a new branch runs with its change set unknown, deleted branches and tags run nothing, and a file that
is not valid YAML is a run that fails saying where (Azure's way), not a pipeline the push passes by in silence."""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from ml_service.ci.server import hooks, service
from ml_service.config import PACKAGE_ROOT
from tests.ci.helpers import make_project

pytestmark = pytest.mark.integration

PIPELINES = {
    "ci": "trigger:\n  branches: {include: [main]}\n  paths: {include: [src]}\npr: none\nsteps:\n  - bash: echo ci\n",
    "not-main": "trigger:\n  branches: {exclude: [main]}\npr: none\nsteps:\n  - bash: echo not-main\n",
    "off": "trigger: none\npr: none\nsteps:\n  - bash: echo off\n",
    "pr": "trigger: none\npr:\n  branches: {include: [main]}\nsteps:\n  - bash: echo pr\n",
    "pr-release": "trigger: none\npr:\n  branches: {include: [release/*]}\nsteps:\n  - bash: echo pr-release\n",
    "defaults": "steps:\n  - bash: echo defaults\n",
    "listed": "trigger: [main]\npr: [main]\nsteps:\n  - bash: echo listed\n",
    "broken": "trigger: [unclosed\n",
}


def git(cwd, *args) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def source(tmp_path):
    folder = tmp_path / "source" / ".pipelines"
    folder.mkdir(parents=True)
    for name, text in PIPELINES.items():
        (folder / f"{name}.yml").write_text(text)
    return folder.parent


def matched(source, branch, changed):
    return sorted((path.stem, reason) for path, reason in hooks.matching_pipelines(source, branch, changed))


@pytest.mark.parametrize("branch, changed, expected", [
    ("main", ["src/app.py"], [("broken", "IndividualCI"), ("ci", "IndividualCI"), ("defaults", "IndividualCI"),
                              ("listed", "IndividualCI")]),
    ("main", ["docs/x.md"], [("broken", "IndividualCI"), ("defaults", "IndividualCI"), ("listed", "IndividualCI")]),
    ("main", None, [("broken", "IndividualCI"), ("ci", "IndividualCI"), ("defaults", "IndividualCI"),
                    ("listed", "IndividualCI")]),
    ("feature/x", ["src/app.py"], [("broken", "PullRequest"), ("defaults", "PullRequest"), ("listed", "PullRequest"),
                                   ("pr", "PullRequest")]),
    ("release/1", ["src/app.py"], [("broken", "PullRequest"), ("defaults", "PullRequest"), ("listed", "PullRequest"),
                                   ("pr", "PullRequest")]),
])
def test_a_push_matches_trigger_on_main_and_pr_into_main_elsewhere(source, branch, changed, expected):
    assert matched(source, branch, changed) == expected


def test_a_push_runs_what_it_triggers_and_nothing_for_tags_or_deleted_branches(tmp_path, monkeypatch):
    project = make_project(tmp_path, monkeypatch)
    work = tmp_path / "work"
    (work / ".pipelines").mkdir(parents=True)
    (work / ".pipelines" / "ci.yml").write_text(PIPELINES["ci"])
    (work / "src").mkdir()
    (work / "src" / "app.py").write_text("x = 1\n")
    (work / "README.md").write_text("docs\n")
    git(work, "init", "-q", "-b", "main")
    git(work, "-c", "user.email=t@example.invalid", "-c", "user.name=t", "add", ".")
    git(work, "-c", "user.email=t@example.invalid", "-c", "user.name=t", "commit", "-qm", "first")
    first = git(work, "rev-parse", "HEAD")
    (work / "README.md").write_text("more docs\n")
    git(work, "-c", "user.email=t@example.invalid", "-c", "user.name=t", "commit", "-qam", "docs only")
    docs = git(work, "rev-parse", "HEAD")
    remote = tmp_path / "remote.git"
    git(tmp_path, "clone", "-q", "--bare", str(work), str(remote))
    zero = hooks.ZERO
    assert hooks.changed_paths(remote, zero, first) is None
    assert hooks.changed_paths(remote, first, docs) == ["README.md"]
    assert hooks.on_push(project, remote, f"{first} {docs} refs/heads/main\n") == []  # outside the path filter
    assert hooks.on_push(project, remote, f"{zero} {first} refs/tags/v1\n{first} {zero} refs/heads/main\n") == []
    ran = hooks.on_push(project, remote, f"{zero} {docs} refs/heads/main\n")  # a new branch: changes unknown
    store = service.open_store(project)
    assert [(store.get_run(r).pipeline, store.get_run(r).reason, store.get_run(r).commit_sha) for r in ran] == \
        [("ci", "IndividualCI", docs)]
    assert store.get_run(ran[0]).result == "succeeded"


def test_a_malformed_pipeline_file_is_a_failed_run_saying_where_and_the_others_still_run(tmp_path, monkeypatch):
    project = make_project(tmp_path, monkeypatch)
    work = tmp_path / "work"
    (work / ".pipelines").mkdir(parents=True)
    (work / ".pipelines" / "good.yml").write_text(PIPELINES["defaults"])
    (work / ".pipelines" / "broken.yml").write_text("trigger: [main]\nsteps:\n  - bash: echo x\n  - [unclosed\n")
    git(work, "init", "-q", "-b", "main")
    git(work, "-c", "user.email=t@example.invalid", "-c", "user.name=t", "add", ".")
    git(work, "-c", "user.email=t@example.invalid", "-c", "user.name=t", "commit", "-qm", "first")
    remote = tmp_path / "remote.git"
    git(tmp_path, "clone", "-q", "--bare", str(work), str(remote))
    head = git(work, "rev-parse", "HEAD")
    hooks.on_push(project, remote, f"{hooks.ZERO} {head} refs/heads/main\n")
    store = service.open_store(project)
    runs = {run.pipeline: run for run in store.list_runs(10)}
    assert sorted(runs) == ["broken", "good"]
    assert runs["good"].result == "succeeded"
    assert (runs["broken"].status, runs["broken"].result) == ("completed", "failed")
    [compile_record] = [r for r in store.records(runs["broken"].id) if r["path"] == "__compile"]
    assert compile_record["result"] == "Failed"
    assert "broken.yml:5: malformed YAML" in compile_record["detail"]  # the file and the line Azure would name


def test_the_hook_runs_the_platform_that_installed_it_in_the_background(tmp_path, monkeypatch):
    """The post-receive hook starts `python -m ml_service.cli ci on-push` in the folder of the ml_service that
    installed it (so a push runs that code, whatever else the interpreter could import) and returns at once."""
    project = make_project(tmp_path, monkeypatch)
    seen = tmp_path / "seen"
    fake = tmp_path / "python"
    fake.write_text(f"#!/bin/sh\n{{ pwd; echo \"$MLOPS_ROOT\"; printf '%s\\n' \"$@\"; }} > {seen}.tmp\n"
                    f"mv {seen}.tmp {seen}\n")
    fake.chmod(0o755)
    monkeypatch.setattr(sys, "executable", str(fake))
    remote = hooks.install(project, tmp_path / "remote.git")
    pushed = subprocess.run(["sh", str(remote / "hooks" / "post-receive")], cwd=remote, input="a b refs/heads/main\n",
                            capture_output=True, text=True, timeout=60)
    assert pushed.returncode == 0
    deadline = time.monotonic() + 60
    while not seen.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    cwd, root, *argv = seen.read_text().splitlines()
    assert Path(cwd) == PACKAGE_ROOT and Path(root) == project.root
    assert argv == ["-m", "ml_service.cli", "ci", "on-push", "--repo", str(remote), "--updates",
                    "a b refs/heads/main"]
