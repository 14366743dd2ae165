"""Process trees from /proc, shared by the benchmarks (CPU and memory of a server and its workers)."""
from __future__ import annotations

import os


def children(pid: int) -> list[int]:
    """pid's child processes (from /proc/PID/task/*/children: cheap, no scan of every process)."""
    found = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as handle:
                found.extend(int(child) for child in handle.read().split())
    except OSError:
        pass
    return found
