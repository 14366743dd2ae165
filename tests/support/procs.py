"""Whether a process still runs, as /proc tells it."""
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
