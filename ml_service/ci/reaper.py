"""What a job's steps leave running ends with the job, daemons included (issue 24 finding 6).

A daemon leaves its step's process group (`setsid sleep &`, a double fork with os.setsid()), so killing the
group misses it. Two things catch it: the engine becomes a child subreaper (Linux prctl
PR_SET_CHILD_SUBREAPER), so orphans of its steps are re-parented to it instead of init and can be reaped;
and every step's environment carries the job's token (MLOPS_CI_JOB), so at the end of the job every process
of this user that still has the token in its environment (/proc/<pid>/environ) is killed, whatever session or
parent it has. A process that scrubs its environment is not found; that is said in docs/ci.md.
"""
from __future__ import annotations

import ctypes
import os
import secrets
import signal
import sys
from pathlib import Path

TOKEN_VARIABLE = "MLOPS_CI_JOB"
PR_SET_CHILD_SUBREAPER = 36


def become_subreaper() -> bool:
    """Make this process the reaper of its orphaned descendants (Linux); False where it cannot."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def new_token() -> str:
    """A token for one job: the value of MLOPS_CI_JOB in its steps' environment."""
    return secrets.token_hex(12)


def holders(token: str) -> list[int]:
    """Pids of this user's processes whose environment holds MLOPS_CI_JOB=token (never this process)."""
    needle = f"{TOKEN_VARIABLE}={token}".encode()
    found = []
    for entry in Path("/proc").iterdir() if Path("/proc").is_dir() else []:
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if needle in (entry / "environ").read_bytes().split(b"\0"):
                found.append(int(entry.name))
        except OSError:  # gone, or another user's
            continue
    return found


def reap() -> None:
    """Collect the exit status of any finished child (re-parented orphans included), without waiting."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def kill_job(token: str, rounds: int = 5) -> int:
    """Kill every process that carries the job's token (forks made meanwhile are caught in later rounds);
    returns how many were killed."""
    killed = 0
    for _ in range(rounds):
        pids = holders(token)
        if not pids:
            break
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
                killed += 1
            except (ProcessLookupError, PermissionError):
                pass
        reap_children(pids)
    return killed


def reap_children(pids: list[int]) -> None:
    """Reap those of pids that are our children (re-parented to the subreaper), once they are dead."""
    for pid in pids:
        try:
            os.waitpid(pid, 0)
        except (ChildProcessError, OSError):
            pass
