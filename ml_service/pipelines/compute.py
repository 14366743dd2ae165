"""Compute targets: where a step's process runs. `local` runs each step as its own process group."""
from __future__ import annotations

import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from ml_service.processes import kill_group, start_watched
from ml_service.errors import MLOpsError


class ComputeError(MLOpsError):
    """A compute target is unknown or unavailable."""


@dataclass(frozen=True)
class ProcessResult:
    """How a step's process ended."""

    returncode: int
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        """True when the process exited 0."""
        return self.returncode == 0 and not self.timed_out

    def describe(self) -> str:
        """Why the process failed, in words."""
        if self.timed_out:
            return "timed out; its process tree was killed"
        if self.returncode < 0:
            name = signal.Signals(-self.returncode).name
            return f"killed by signal {-self.returncode} ({name})"
        return f"exited with code {self.returncode}"


class LocalCompute:
    """Run the step on this machine in a new session, so its whole tree can be killed.

    With a fork server (zygote.py) a step that declares heavy imports is forked from it;
    any other step starts a fresh interpreter.
    """

    name = "local"

    def __init__(self, zygote=None, watchdog=None):
        self.zygote = zygote
        self.watchdog = watchdog

    def run(self, spec_path: Path, env: dict[str, str], cwd: Path, log_path: Path, timeout_s: float,
            preloaded: bool = False) -> ProcessResult:
        """Run the step described by spec_path, output to log_path; kill its tree on timeout or interrupt."""
        if preloaded and self.zygote is not None and self.zygote.wait_ready():
            return self.zygote.run(spec_path, cwd, log_path, timeout_s, env)
        argv = [sys.executable, "-m", "ml_service.pipelines.step_host", str(spec_path)]
        with open(log_path, "ab") as log:
            proc = start_watched(argv, self.watchdog, env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT)
            try:
                return ProcessResult(proc.wait(timeout=timeout_s))
            except subprocess.TimeoutExpired:
                _kill_group(proc)
                return ProcessResult(proc.returncode, timed_out=True)
            except BaseException:
                _kill_group(proc)
                raise
            finally:
                if self.watchdog is not None:
                    self.watchdog.release(proc.pid)


def _kill_group(proc: subprocess.Popen) -> None:
    kill_group(proc.pid)
    proc.wait()


def get_compute(name: str, zygote=None, settings=None, watchdog=None):
    """The compute target called name; watchdog (watchdog.py) kills its processes if the runner dies."""
    if name == "local":
        return LocalCompute(zygote, watchdog)
    if name == "docker" and settings is not None:
        from ml_service.pipelines.docker_compute import DockerCompute

        return DockerCompute(settings, watchdog)
    raise ComputeError(f"unknown compute target '{name}' (available: local, docker)")
