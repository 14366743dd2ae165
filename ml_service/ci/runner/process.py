"""Step processes: start a script in a process group of its own, stream its output through the
masker into the step's log, read ##vso logging commands from it, kill its tree on timeout or cancel,
and (through the engine's watchdog, ml_service/pipelines/watchdog.py) when the engine itself dies.
"""
from __future__ import annotations

import codecs
import os
import re
import select
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ml_service.processes import kill_group, start_watched

VSO = re.compile(r"##vso\[([\w.]+)([^\]]*)\](.*)")
RUNNING: set[int] = set()  # process groups of the step processes running now (what a cancel ends first)


def cancel_running() -> bool:
    """Kill the process group of every step running now; whether there was one (a run's cancel: the step ends
    Canceled and the run goes on with the steps and jobs whose condition still holds, as Azure's agent does)."""
    groups = list(RUNNING)
    for pgid in groups:
        kill_group(pgid)
    return bool(groups)


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


ESCAPES = (("%3B", ";"), ("%0D", "\r"), ("%0A", "\n"), ("%5D", "]"), ("%AZP25", "%"))


def unescape(text: str) -> str:
    """A logging command's property or message as the agent reads it (Agent.Sdk/CommandStringConvertor.cs:
    %3B ;  %0D CR  %0A LF  %5D ]  and, DECODE_PERCENTS being on by default, %AZP25 %)."""
    for escaped, plain in ESCAPES:
        text = text.replace(escaped, plain)
    return text


def parse_command(line: str) -> Command | None:
    """The logging command in a line of output, if any: as the agent's Command.TryParse, the properties split at
    ';' and the first '=', both unescaped, and the message is everything after ']' (only the line's end removed)."""
    match = VSO.search(line)
    if not match:
        return None
    fields = {}
    for part in match.group(2).split(";"):
        key, _, value = part.partition("=")
        # spaces around a key or value are dropped: the agent would read " issecret " as another key and leave the
        # value unmasked; here it is a secret, as its author meant (masking more never changes what a step does)
        if key.strip() and value.strip():
            fields[key.strip().lower()] = unescape(value.strip())
    return Command(match.group(1).lower(), fields, unescape(match.group(3).rstrip("\r\n")))


CHUNK = 65536  # bytes read from a step's output at a time
MAX_LINE = 1024 * 1024  # a longer line is written out in pieces (never buffered whole); a logging command up to
# this length is still read (a variable of 200 KB set with ##vso is valid)
GRACE = 2.0  # seconds of output still read after the step's main process exits (then a background child that
# holds stdout open no longer holds the step up; it ends with the job, reaper.py)


def safe_cut(text: str, cut: int, secrets) -> int:
    """A position at or before cut where no secret occurrence is split (so masking each part masks all)."""
    for secret in secrets:
        if not secret:
            continue
        start = text.find(secret, max(0, cut - len(secret) + 1))
        while start != -1 and start < cut:
            if start + len(secret) > cut:
                cut = start
                break
            start = text.find(secret, start + 1)
    return cut


class _Lines:
    """Splits a stream of bytes into lines for the log and ##vso commands, holding at most MAX_LINE
    characters of an unfinished line (a longer one is written out in pieces, never parsed as a command)."""

    def __init__(self, emit, on_command, secrets):
        self.emit, self.on_command, self.secrets = emit, on_command, secrets
        self.pending = ""
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def feed(self, data: bytes, final: bool = False) -> None:
        text = self.pending + self.decoder.decode(data, final)
        lines = text.split("\n")
        self.pending = lines.pop()
        for line in lines:
            line += "\n"
            command = parse_command(line)
            if command:
                self.on_command(command)
            self.emit(line)
        if final and self.pending:
            command = parse_command(self.pending)
            if command:
                self.on_command(command)
            self.emit(self.pending)
            self.pending = ""
        elif len(self.pending) > MAX_LINE:
            keep = 4096  # a secret split across pieces is kept whole for the next piece
            cut = safe_cut(self.pending, len(self.pending) - keep, getattr(self.secrets, "secrets", ()))
            self.emit(self.pending[:cut])
            self.pending = self.pending[cut:]


def run(argv: list[str], env: dict[str, str], cwd: Path, log_path: Path, timeout: float | None,
        mask: Callable[[str], str], on_command: Callable[[Command], None], watchdog=None,
        fail_on_stderr: bool = False, log_max_bytes: int | None = None) -> Exit:
    """Run argv to its end (or its timeout); its output, read in bounded chunks, goes through mask into
    log_path (capped: steplog.py).

    KeyboardInterrupt (a cancel) kills the process tree, notes it in the log and propagates. The
    watchdog, if given, kills the tree should this process die first (kill -9); the caller releases
    it when the job ends (as the agent ends a job's orphan processes). With fail_on_stderr, stderr is
    read apart and any output there fails the step.
    """
    from ml_service.ci.runner.steplog import DEFAULT_MAX_MB, StepLog

    size = sum(len(k) + len(v) + 2 for k, v in env.items())
    largest = max(env, key=lambda k: len(env[k]), default="")
    if size > MAX_ENVIRONMENT or (largest and len(env[largest]) > MAX_ENV_VALUE):
        with open(log_path, "a") as log:
            log.write(f"##[error]the step's environment is {size} bytes (largest: {largest}, {len(env[largest])} "
                      f"bytes): over what the kernel passes to a process ({MAX_ENVIRONMENT} in all, {MAX_ENV_VALUE} "
                      "for one variable); declare fewer or smaller variables\n")
        return Exit(126, issues=[f"the step's environment is too large ({size} bytes)"])
    log = StepLog(log_path, log_max_bytes or DEFAULT_MAX_MB * 1024 * 1024)
    try:
        try:
            proc = start_watched(argv, watchdog, env=env, cwd=cwd, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE if fail_on_stderr else subprocess.STDOUT)
        except OSError as exc:
            log.write(f"##[error]the step cannot start: {exc.strerror or exc}\n")
            return Exit(126, issues=[f"the step cannot start: {exc.strerror or exc}"])
        RUNNING.add(proc.pid)
        timer = _Killer(proc, timeout)
        wrote_stderr: list[bool] = []

        def emit(text: str) -> None:
            log.write(mask(text))
            if log.full and not stopped:  # the disk is (nearly) full: the step ends before the run's records can't
                stopped.append(True)
                kill_group(proc.pid)

        stopped: list[bool] = []

        streams = {proc.stdout.fileno(): _Lines(emit, on_command, mask)}
        if fail_on_stderr:
            streams[proc.stderr.fileno()] = _Lines(lambda text: (wrote_stderr.append(True), emit(text)),
                                                   lambda command: None, mask)
        try:
            _pump(proc, streams, log)
            code = proc.wait()
        except KeyboardInterrupt:
            kill_group(proc.pid)
            proc.wait()
            log.write("##[error]the run was canceled\n")
            raise
        finally:
            RUNNING.discard(proc.pid)
            timer.cancel()
            for stream in (proc.stdout, proc.stderr):
                if stream is not None:
                    stream.close()
        if log.full:
            return Exit(code or 1, timer.fired, [f"disk full: {log.full}"], pid=proc.pid)
        if wrote_stderr:
            log.write("##[error]the step wrote to stderr and failOnStderr is true\n")
            if code == 0:
                return Exit(1, timer.fired, ["the step wrote to stderr (failOnStderr: true)"], pid=proc.pid)
        return Exit(code, timer.fired, pid=proc.pid)
    finally:
        log.close()


def _pump(proc, streams: dict, log) -> None:
    """Read the step's output until every stream ends, or GRACE seconds after its main process exited
    (a background child may hold the pipe open for ever)."""
    open_fds = set(streams)
    exited_at = None
    while open_fds:
        ready, _, _ = select.select(list(open_fds), [], [], 0.2)
        for fd in ready:
            data = os.read(fd, CHUNK)
            if not data:
                open_fds.discard(fd)
                streams[fd].feed(b"", final=True)
            else:
                streams[fd].feed(data)
        log.flush()
        if proc.poll() is not None:
            now = time.monotonic()
            exited_at = exited_at or now
            if (not ready and now - exited_at > 0.3) or now - exited_at > GRACE:
                break
    for fd in open_fds:
        streams[fd].feed(b"", final=True)


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
