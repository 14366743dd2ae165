"""Issue 24 finding 4: a burst of pushes through the real post-receive hook loses no run. Every push of a
branch queues (and runs) its pull-request pipeline; the runs are counted in the run store."""
from __future__ import annotations

import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from ml_service.ci.server import hooks, service
from tests.ci.helpers import make_project

pytestmark = pytest.mark.integration

PR = "trigger: none\npr:\n  branches: {include: [main]}\nsteps:\n  - bash: echo \"built $(Build.SourceBranchName)\"\n"


def git(cwd, *args) -> str:
    return subprocess.run(["git", "-c", "user.email=a@b", "-c", "user.name=a", *args], cwd=cwd, check=True,
                          capture_output=True, text=True).stdout.strip()


def _burst(tmp_path, monkeypatch, branches: int, parallel: int) -> None:
    settings = make_project(tmp_path, monkeypatch)
    (tmp_path / ".pipelines").mkdir()
    (tmp_path / ".pipelines" / "pr.yml").write_text(PR)
    (tmp_path / ".gitignore").write_text("state/\n")
    git(tmp_path, "init", "-q", "-b", "main")
    git(tmp_path, "add", "-A")
    git(tmp_path, "commit", "-q", "-m", "pipelines")
    remote = hooks.install(settings, tmp_path / "remote.git")
    git(tmp_path, "push", "-q", "mlops", "main")  # main's own push: no pr run (trigger: none)
    names = [f"feature/b{i:03d}" for i in range(branches)]
    for name in names:
        git(tmp_path, "branch", name)

    def push(name: str) -> int:
        return subprocess.run(["git", "push", "-q", "mlops", name], cwd=tmp_path, capture_output=True,
                              timeout=600).returncode
    with ThreadPoolExecutor(parallel) as pool:
        assert list(pool.map(push, names)) == [0] * branches
    store = service.open_store(settings)
    deadline = time.monotonic() + 1800  # the hooks run in the background: wait for them, then count

    def done() -> list:
        return [r for r in store.list_runs(100000) if r.status == "completed"]
    while len(done()) < branches and time.monotonic() < deadline:
        time.sleep(1)
    runs = store.list_runs(100000)
    assert sorted(r.branch for r in runs) == sorted(names)  # one run per pushed branch, none lost
    assert {r.result for r in runs} == {"succeeded"}
    log = (settings.state_dir / "ci" / "hooks.log").read_text()
    assert "database is locked" not in log and "Traceback" not in log
    assert remote.exists()


def test_a_burst_of_pushes_loses_no_run(tmp_path, monkeypatch):
    _burst(tmp_path, monkeypatch, branches=40, parallel=40)


@pytest.mark.slow
def test_two_hundred_pushes_forty_at_once_lose_no_run(tmp_path, monkeypatch):
    _burst(tmp_path, monkeypatch, branches=200, parallel=40)
