"""Runs that outlived their process: every run this platform opens names the process that owns it
(tag `mlops.owner`: host, boot id, pid and the process's start time, so a reused pid is not taken
for the owner). A run still RUNNING whose owner is gone (killed with SIGKILL, the machine rebooted)
is ended KILLED, with the reason, by the next process that looks.
"""
from __future__ import annotations

import os
import socket
import time
from pathlib import Path

OWNER_TAG = "mlops.owner"
ERROR_TAG = "mlops.error"


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def _start_time(pid: int) -> str:
    """The process's start time in clock ticks since boot (field 22 of /proc/PID/stat), "" if unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat[stat.rindex(")") + 2:].split()[19]


def owner_tag(pid: int | None = None) -> str:
    """This process as a run owner: host|boot id|pid|start time."""
    pid = pid or os.getpid()
    return f"{socket.gethostname()}|{_boot_id()}|{pid}|{_start_time(pid)}"


def owner_is_gone(owner: str) -> bool:
    """True when the owner process certainly ended; False when it lives or runs on another host."""
    try:
        host, boot, pid, started = owner.split("|")
    except ValueError:
        return False
    if host != socket.gethostname():
        return False
    if boot != _boot_id():
        return True  # this machine rebooted since
    return _start_time(int(pid)) != started


def describe(owner: str) -> str:
    """The owner in words."""
    host, _, pid, _ = (owner.split("|") + ["", "", "", ""])[:4]
    return f"pid {pid} on {host}"


def orphan_reason(owner: str, found_by: str) -> str:
    """The mlops.error of a run ended because its owner is gone."""
    when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    return (f"killed: the process that ran it ({describe(owner)}) ended without closing it (killed or crashed); "
            f"marked KILLED at {when} by {found_by}")


def end_orphans(client, experiment_ids: list[str], found_by: str) -> list[str]:
    """End KILLED every RUNNING run of these experiments whose owner on this host is gone; return their ids."""
    host = socket.gethostname().replace("'", "")
    runs = client.search_runs(experiment_ids, f"attributes.status = 'RUNNING' and tags.`{OWNER_TAG}` LIKE '{host}|%'",
                              max_results=1000)
    ended = []
    for run in runs:
        owner = run.data.tags.get(OWNER_TAG, "")
        if not owner_is_gone(owner):
            continue
        client.set_tag(run.info.run_id, ERROR_TAG, orphan_reason(owner, found_by))
        client.set_terminated(run.info.run_id, "KILLED")
        ended.append(run.info.run_id)
    return ended
