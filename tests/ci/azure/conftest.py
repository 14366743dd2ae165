"""A real git project for the Azure conformance tests: its pipelines, its mlops.yml, runs and what steps printed.

Every test copies the pipeline files it needs from pipelines/ into the project's .pipelines/, commits
them, and runs them through the engine's public entry (service.queue + service.execute, as `mlops ci
run` does). A step reports what it saw by printing `OUT:name=value` lines: `Run.out` holds them, the
last value of each name winning (`Run.outs` keeps every value, in order). Assertions read those,
the files steps wrote, and the run and step records: never the engine's console wording.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

CHECKOUT = Path(__file__).resolve().parents[3]  # the tree these tests belong to

PIPELINES = Path(__file__).parent / "pipelines"
OUT = re.compile(r"^OUT:([\w.\-]+)=(.*)$")
EMAIL = "dev@example.com"


def git(cwd: Path, *args: str) -> str:
    """git in cwd (a test identity, no global config)."""
    return subprocess.run(["git", "-c", f"user.email={EMAIL}", "-c", "user.name=Dev", *args], cwd=cwd, check=True,
                          capture_output=True, text=True).stdout


@dataclass
class Run:
    """A finished run: its record, its step records, what its steps printed."""

    run: object
    records: list[dict]
    logs: str
    out: dict[str, str] = field(default_factory=dict)
    outs: dict[str, list[str]] = field(default_factory=dict)
    error: str = ""  # the CIError of a refused run ('' when it ran)
    triggered: list[int] = field(default_factory=list)

    @property
    def result(self) -> str:
        """The run's result: succeeded, failed, ..."""
        return self.run.result

    def steps(self) -> dict[str, str]:
        """display name -> result of every step."""
        return {r["display"]: r["result"] or r["status"] for r in self.records if r["kind"] == "step"}

    def jobs(self) -> dict[str, str]:
        """path -> result of every job."""
        return {r["path"]: r["result"] or r["status"] for r in self.records if r["kind"] == "job"}


class Project:
    """A git repository with mlops.yml and .pipelines/, and the runs of its pipelines."""

    def __init__(self, root: Path, monkeypatch):
        self.root = root
        self.monkeypatch = monkeypatch
        self.ci: dict = {}
        root.mkdir(parents=True, exist_ok=True)
        (root / ".pipelines").mkdir(exist_ok=True)
        (root / ".gitignore").write_text(".mlops/\n")
        self.write_config()
        git(root, "init", "-q", "-b", "main")
        self.commit("initial")

    def write_config(self) -> None:
        """mlops.yml with the project's ci: section (no model projects)."""
        (self.root / "mlops.yml").write_text(yaml.safe_dump({"models": [], "ci": self.ci}))

    def configure(self, **ci) -> None:
        """Set keys of mlops.yml's ci: section and commit."""
        self.ci.update(ci)
        self.write_config()
        self.commit("configure")

    def add(self, *names: str, commit: bool = True) -> None:
        """Copy pipeline files (paths under pipelines/) into .pipelines/, keeping their sub-folders."""
        for name in names:
            target = self.root / ".pipelines" / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(PIPELINES / name, target)
        if commit:
            self.commit(f"add {', '.join(names)}")

    def write(self, path: str, text: str, commit: bool = True) -> Path:
        """Write a file of the project (and commit it)."""
        target = self.root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
        if commit:
            self.commit(f"write {path}")
        return target

    def commit(self, message: str) -> str:
        """Commit everything; the new commit's sha."""
        git(self.root, "add", "-A")
        git(self.root, "commit", "-q", "--allow-empty", "-m", message)
        return git(self.root, "rev-parse", "HEAD").strip()

    def settings(self):
        from ml_service.config import load_settings

        return load_settings()

    def store(self):
        from ml_service.ci.server import service

        return service.open_store(self.settings())

    def run(self, name: str, params: dict | None = None, reason: str = "Manual", branch: str = "",
            chain: bool = True) -> Run:
        """Queue and run a pipeline of .pipelines/ (by file name) here, then what it triggers (chain)."""
        from ml_service.ci.server import service

        settings = self.settings()
        store = service.open_store(settings)
        file = self.root / ".pipelines" / name
        run_id = service.queue(settings, store, file, reason, {k: str(v) for k, v in (params or {}).items()},
                               branch=branch)
        error, ran = "", [run_id]
        try:
            ran = service.execute(settings, store, run_id, chain=chain)
        except service.CIError as exc:
            error = str(exc)
        return self.result(store, run_id, error, ran[1:])

    def result(self, store, run_id: int, error: str = "", triggered: list[int] | None = None) -> Run:
        """A run as data."""
        records = store.records(run_id)
        logs = "".join(Path(r["log"]).read_text(errors="replace") for r in records
                       if r["log"] and Path(r["log"]).exists())
        found = Run(store.get_run(run_id), records, logs, error=error, triggered=list(triggered or []))
        for line in logs.splitlines():
            match = OUT.match(line.strip())
            if match:
                found.out[match.group(1)] = match.group(2)
                found.outs.setdefault(match.group(1), []).append(match.group(2))
        if error and not found.records:
            found.records = []
        return found

    def cli(self, *args: str) -> subprocess.CompletedProcess:
        """`mlops ARGS` of this checkout's code, in the project (as a user runs it). The checkout goes first on
        PYTHONPATH: from the project's folder `python -m ml_service.cli` would import the venv's installed copy
        (another checkout's code), and a bug in this one would pass."""
        path = os.pathsep.join(filter(None, (str(CHECKOUT), os.environ.get("PYTHONPATH"))))
        env = {**os.environ, "MLOPS_ROOT": str(self.root), "PYTHONPATH": path}
        return subprocess.run([sys.executable, "-m", "ml_service.cli", *args], cwd=self.root, env=env,
                              capture_output=True, text=True, timeout=300)


@pytest.fixture
def project(tmp_path, monkeypatch) -> Project:
    """A fresh git project; the workspace state under its .mlops/ (ignored by git)."""
    root = tmp_path / "project"
    monkeypatch.setenv("MLOPS_ROOT", str(root))
    monkeypatch.delenv("MLOPS_STATE_DIR", raising=False)
    monkeypatch.delenv("MLOPS_MODEL", raising=False)
    monkeypatch.delenv("MLOPS_TOKEN", raising=False)
    monkeypatch.setenv("MLOPS_USER", EMAIL)
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    return Project(root, monkeypatch)


@pytest.fixture
def other_repo(tmp_path) -> Path:
    """A second git repository (a repository resource): main says 'main', branch release says 'release'."""
    repo = tmp_path / "tools"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "TOOL.txt").write_text("main\n")
    (repo / "steps").mkdir()
    shutil.copy(PIPELINES / "other" / "echo-steps.yml", repo / "steps" / "echo.yml")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "main")
    git(repo, "checkout", "-q", "-b", "release")
    (repo / "TOOL.txt").write_text("release\n")
    (repo / "steps" / "echo.yml").write_text((repo / "steps" / "echo.yml").read_text().replace("from-main",
                                                                                               "from-release"))
    git(repo, "commit", "-q", "-am", "release")
    git(repo, "checkout", "-q", "main")
    return repo
