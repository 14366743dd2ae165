"""Compute targets: where a step's process runs. `local` runs each step as its own process group."""
from __future__ import annotations

import os
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path


class ComputeError(Exception):
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
    """Run the step on this machine in a new session, so its whole tree can be killed."""

    name = "local"

    def run(self, argv: list[str], env: dict[str, str], cwd: Path, log_path: Path,
            timeout_s: float) -> ProcessResult:
        """Run argv with stdout and stderr to log_path; kill the process group on timeout or interrupt."""
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(argv, env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True)
            try:
                return ProcessResult(proc.wait(timeout=timeout_s))
            except subprocess.TimeoutExpired:
                _kill_group(proc)
                return ProcessResult(proc.returncode, timed_out=True)
            except BaseException:
                _kill_group(proc)
                raise


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def get_compute(name: str):
    """The compute target called name."""
    if name == "local":
        return LocalCompute()
    raise ComputeError(f"unknown compute target '{name}' (available here: local)")
