"""Step processes: start a script in a process group of its own, stream its output through the
masker into the step's log, read ##vso logging commands from it, kill its tree on timeout or cancel,
and (through the engine's watchdog, ml_service/pipelines/watchdog.py) when the engine itself dies.
"""
from __future__ import annotations

import re
import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ml_service.processes import kill_group

VSO = re.compile(r"##vso\[([\w.]+)([^\]]*)\](.*)")
MAX_ENVIRONMENT = 1_500_000  # bytes of environment; Linux refuses argv + env over ARG_MAX (2 MB by default)
MAX_ENV_VALUE = 131_072 - 1  # one "NAME=value" string: MAX_ARG_STRLEN


@dataclass
class Command:
    """One ##vso[area.action key=value;...]message logging command."""

    area: str
    fields: dict[str, str]
    message: str


@dataclass
class Exit:
    """How a step process ended."""

    code: int
    timed_out: bool = False
    issues: list[str] = field(default_factory=list)
    pid: int = 0  # the leader of the step's process group (what it left running ends with the job)


def parse_command(line: str) -> Command | None:
    """The logging command in a line of output, if any."""
    match = VSO.search(line)
    if not match:
        return None
    fields = {}
    for part in match.group(2).strip().split(";"):
        if "=" in part:
            key, value = part.split("=", 1)
            fields[key.strip().lower()] = value.strip()
    return Command(match.group(1).lower(), fields, match.group(3).strip())


def run(argv: list[str], env: dict[str, str], cwd: Path, log_path: Path, timeout: float | None,
        mask: Callable[[str], str], on_command: Callable[[Command], None], watchdog=None,
        fail_on_stderr: bool = False) -> Exit:
    """Run argv to its end (or its timeout); every output line goes through mask into log_path.

    KeyboardInterrupt (a cancel) kills the process tree, notes it in the log and propagates. The
    watchdog, if given, kills the tree should this process die first (kill -9); the caller releases
    it when the job ends (as the agent ends a job's orphan processes).
    """
    size = sum(len(k) + len(v) + 2 for k, v in env.items())
    largest = max(env, key=lambda k: len(env[k]), default="")
    with open(log_path, "a") as log:
        if size > MAX_ENVIRONMENT or (largest and len(env[largest]) > MAX_ENV_VALUE):
            log.write(f"##[error]the step's environment is {size} bytes (largest: {largest}, {len(env[largest])} "
                      f"bytes): over what the kernel passes to a process ({MAX_ENVIRONMENT} in all, {MAX_ENV_VALUE} "
                      "for one variable); declare fewer or smaller variables\n")
            return Exit(126, issues=[f"the step's environment is too large ({size} bytes)"])
        try:
            proc = subprocess.Popen(argv, env=env, cwd=cwd, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE if fail_on_stderr else subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True)
        except OSError as exc:
            log.write(f"##[error]the step cannot start: {exc.strerror or exc}\n")
            return Exit(126, issues=[f"the step cannot start: {exc.strerror or exc}"])
        if watchdog is not None:
            watchdog.watch(proc.pid)
        timer = _Killer(proc, timeout)
        lock = threading.Lock()
        wrote_stderr: list[bool] = []

        def errors() -> None:  # failOnStderr: stderr read apart, into the same log
            for raw in proc.stderr:
                wrote_stderr.append(True)
                with lock:
                    log.write(mask(raw.decode(errors="replace")))
                    log.flush()
        reader = threading.Thread(target=errors, daemon=True) if fail_on_stderr else None
        if reader is not None:
            reader.start()
        try:
            for raw in proc.stdout:
                line = raw.decode(errors="replace")
                command = parse_command(line)
                if command:
                    on_command(command)
                with lock:
                    log.write(mask(line))
                    log.flush()
            code = proc.wait()
            if reader is not None:
                reader.join(5)
            if wrote_stderr:
                log.write("##[error]the step wrote to stderr and failOnStderr is true\n")
                if code == 0:
                    return Exit(1, timer.fired, ["the step wrote to stderr (failOnStderr: true)"], pid=proc.pid)
        except KeyboardInterrupt:
            kill_group(proc.pid)
            proc.wait()
            log.write("##[error]the run was canceled\n")
            raise
        finally:
            timer.cancel()
        return Exit(code, timer.fired, pid=proc.pid)


class _Killer:
    """Kills a process tree when its time is up."""

    def __init__(self, proc, timeout: float | None):
        self.fired = False
        self._timer = None
        if timeout is not None:
            self._timer = threading.Timer(max(timeout, 0.0), self._fire, args=(proc,))
            self._timer.daemon = True
            self._timer.start()

    def _fire(self, proc) -> None:
        self.fired = True
        kill_group(proc.pid)

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
