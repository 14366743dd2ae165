"""Whether a process still runs, and which run in a session, as /proc tells it."""
from __future__ import annotations

from pathlib import Path


def running(pid: int) -> bool:
    """pid is a live process. A zombie is dead: a test that ran the CI engine in-process made pytest a child
    subreaper, and orphans re-parented to it stay zombies until it reaps them."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def session_commands(session: int) -> list[str]:
    """The command lines of the processes in a session (a server started with start_new_session leads its own)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[3]) == session:  # after the name: state, ppid, pgrp, session
                found.append((stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"))
        except (OSError, IndexError, ValueError):
            continue  # ended meanwhile
    return found
