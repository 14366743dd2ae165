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
import time
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


def _stat(pid: int) -> tuple[str, int, int, int] | None:
    """(state, ppid, process group, session) of pid from /proc (readable for a zombie too), or None."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return fields[0], int(fields[1]), int(fields[2]), int(fields[3])


def ancestors(pid: int) -> list[int]:
    """The parent of pid, its parent, ... up to (not including) pid 1: the processes pid descends from. An
    orphaned step process is re-parented to the engine (a subreaper), so the engine stays among them."""
    found: list[int] = []
    current = _stat(pid)
    while current is not None and current[1] > 1 and current[1] not in found:
        found.append(current[1])
        current = _stat(current[1])
    return found


def reap_orphans(groups: set[int], wait: float = 0.0) -> None:
    """Reap our children (orphans of the steps re-parented to this subreaper) that belong to one of the steps'
    process groups or sessions, once dead; with wait, keep at it up to that many seconds while any is still
    alive. Only processes of those groups are touched: children this process started otherwise are not."""
    deadline = time.monotonic() + wait
    while True:
        living = 0
        for entry in Path("/proc").iterdir() if Path("/proc").is_dir() else []:
            if not entry.name.isdigit():
                continue
            stat = _stat(int(entry.name))
            if stat is None or stat[1] != os.getpid() or not ({stat[2], stat[3]} & groups):
                continue
            if stat[0] == "Z":
                try:
                    os.waitpid(int(entry.name), os.WNOHANG)
                except ChildProcessError:
                    pass
            else:
                living += 1
        if not living or time.monotonic() >= deadline:
            return
        time.sleep(0.05)


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
        for pid in pids:  # a killed holder re-parented here: reap it (WNOHANG, then once more after a moment)
            for _ in range(20):
                try:
                    if os.waitpid(pid, os.WNOHANG)[0]:
                        break
                except ChildProcessError:
                    break
                time.sleep(0.01)
    return killed
