"""Run pytest in a copy of the tree, forked from a process that imported the heavy libraries once.

Importing mlflow, scikit-learn and Great Expectations takes 10-30 s on a shared machine; a mutant's tests
often take less. The runner imports them once (never `ml_service` nor `tests`), then forks one child per
test run: the child moves into its tree, puts it first on sys.path and on PYTHONPATH (subprocesses the tests
start import the same tree), and runs pytest.main. A run over its time is interrupted (SIGINT, so fixtures
tear down), then killed with its whole process group.
"""
from __future__ import annotations

import gc
import importlib
import json
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

# Set by the test runs, read by nothing in the tree: coverage and mutation settings of an outer run.
CLEARED_ENV = ("COVERAGE_RCFILE", "COVERAGE_PROCESS_START", "COVERAGE_FILE", "COV_CORE_SOURCE", "COV_CORE_CONFIG",
               "COV_CORE_DATAFILE", "COV_CORE_BRANCH", "COV_CORE_CONTEXT", "MUTANT_UNDER_TEST", "PYTEST_ADDOPTS",
               "MLOPS_TEST_GROUP")


def preload(modules: list[str]) -> list[str]:
    """Import the heavy libraries the tests use (once, before any fork); the names that failed to import."""
    failed = []
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception:  # a library missing here only costs time in each child
            failed.append(name)
    from importlib.metadata import entry_points

    entry_points(group="pytest11")  # reads every installed distribution's metadata once, for every child
    gc.collect()
    gc.freeze()  # the libraries' objects are never collected again: pytest's gc.collect() at exit takes ms, not seconds
    leaked = [m for m in sys.modules if m.split(".")[0] in ("ml_service", "tests")]
    if leaked:
        raise RuntimeError(f"preloading imported the code under test ({leaked[0]}): forked runs would not see mutants")
    return failed


class Recorder:
    """pytest plugin: each test's outcome and duration (setup + call + teardown), written at the end; past
    stop_at (time.monotonic()) no further test runs."""

    def __init__(self, path: Path, stop_at: float | None = None):
        self.path = path
        self.stop_at = stop_at
        self.rows: dict[str, dict] = {}

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_protocol(self, item, nextitem):
        """Past stop_at, the remaining tests are passed over (not failed, not recorded), so that the session
        ends normally and pytest-cov saves what was measured (an interrupted session saves nothing)."""
        if self.stop_at is not None and time.monotonic() > self.stop_at:
            return True
        return None

    def pytest_runtest_logreport(self, report) -> None:
        row = self.rows.setdefault(report.nodeid, {"outcome": "passed", "duration": 0.0})
        row["duration"] += report.duration
        if report.failed:
            row["outcome"] = "failed"
        elif report.skipped and row["outcome"] == "passed":
            row["outcome"] = "skipped"

    def pytest_collectreport(self, report) -> None:
        if report.failed:
            self.rows[report.nodeid or "<collection>"] = {"outcome": "failed", "duration": 0.0}

    def pytest_sessionfinish(self, session) -> None:
        self.path.write_text(json.dumps(self.rows))


def keep_forks_off_the_map() -> None:
    """A process forked inside the test run (the pipeline watchdog, a fork-context pool, a test's own fork) ends
    with the real os._exit, not coverage's patched one (pyproject's `patch = ["_exit"]`).

    The patched one saves the child's copy of the test process's coverage to the test process's own data file
    (pytest-cov names it once, before any fork): on 2026-12-07 that erased every line the tests ran in-process,
    and a map of tests/pipelines held only the lines subprocesses ran (32 of 89 tests; test_watchdog.py alone
    left 1 of 24). The lines only a forked child runs are not mapped now; their mutants get the fallback."""
    real_exit = os._exit  # not patched yet: coverage starts inside pytest.main
    os.register_at_fork(after_in_child=lambda: setattr(os, "_exit", real_exit))


@dataclass
class Job:
    """One pytest run in a forked child."""

    pid: int
    key: str
    deadline: float
    results: Path
    started: float = field(default_factory=time.monotonic)
    interrupted_at: float | None = None
    status: int | None = None

    @property
    def timed_out(self) -> bool:
        return self.interrupted_at is not None

    def outcomes(self) -> dict[str, dict]:
        """The Recorder's rows (empty when the run was killed before it wrote them)."""
        try:
            return json.loads(self.results.read_text())
        except (OSError, ValueError):
            return {}


def start(tree: Path, args: list[str], *, key: str, timeout: float, log: Path,
          env: dict[str, str] | None = None, stop_after: float | None = None) -> Job:
    """Fork a child that runs `pytest args` in tree; its output goes to log. Past stop_after seconds no further
    test starts; past timeout the run is interrupted."""
    stop_at = time.monotonic() + stop_after if stop_after is not None else None
    results = log.with_suffix(".json")
    results.unlink(missing_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        code = 3
        try:
            os.setsid()
            fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.dup2(fd, 1)
            os.dup2(fd, 2)
            os.close(fd)
            devnull = os.open(os.devnull, os.O_RDONLY)
            os.dup2(devnull, 0)
            for name in CLEARED_ENV:
                os.environ.pop(name, None)
            os.environ.update({"PYTHONPATH": str(tree), "PYTHONDONTWRITEBYTECODE": "1",
                               "MLFLOW_DISABLE_TELEMETRY": "true", **(env or {})})
            sys.dont_write_bytecode = True
            os.chdir(tree)
            sys.path[:] = [str(tree)] + [p for p in sys.path if p and not p.rstrip("/").endswith("tools/mutation")]
            keep_forks_off_the_map()
            code = int(pytest.main(args, plugins=[Recorder(results, stop_at)]))
        except BaseException as error:  # noqa: B036 - the child must end here, whatever happened
            print(f"mutation worker: {type(error).__name__}: {error}", file=sys.stderr)
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    return Job(pid, key, time.monotonic() + timeout, results)


def _signal_group(pid: int, signum: int) -> None:
    try:
        os.killpg(pid, signum)
    except (ProcessLookupError, PermissionError):
        pass


def poll(jobs: list[Job], grace: float = 20.0) -> list[Job]:
    """The jobs that ended (their status set); interrupts the ones past their deadline, kills them after grace."""
    done = []
    now = time.monotonic()
    for job in jobs:
        pid, status = os.waitpid(job.pid, os.WNOHANG)
        if pid:
            job.status = os.waitstatus_to_exitcode(status)
            _signal_group(job.pid, signal.SIGKILL)  # whatever the tests left running
            done.append(job)
        elif job.interrupted_at is None and now > job.deadline:
            job.interrupted_at = now
            _signal_group(job.pid, signal.SIGINT)
        elif job.interrupted_at is not None and now > job.interrupted_at + grace:
            _signal_group(job.pid, signal.SIGKILL)
    return done


def wait(job: Job) -> Job:
    """Block until one job ends (its deadline still applies)."""
    while True:
        if poll([job]):
            return job
        time.sleep(0.2)
