"""Runs that outlived their process (workspace/owners.py): the owner tag names host, boot, pid and the process's
start time; a run still RUNNING whose owner on this host is gone is ended KILLED with the reason, and nothing
else is touched (a live owner, another host, a run that already ended). Real processes, a real MLflow store."""
from __future__ import annotations

import os
import socket
import subprocess

import pytest

from ml_service.workspace import owners, tracking

integration = pytest.mark.integration


def dead_owner() -> str:
    """The owner tag of a process that has ended."""
    process = subprocess.Popen(["sleep", "600"])
    owner = owners.owner_tag(process.pid)
    process.kill()
    process.wait()
    return owner


def test_the_owner_tag_is_host_boot_pid_and_start_time_and_this_process_is_alive():
    host, boot, pid, started = owners.owner_tag().split("|")
    assert (host, pid) == (socket.gethostname(), str(os.getpid()))
    assert boot == open("/proc/sys/kernel/random/boot_id").read().strip() and started.isdigit()
    process = subprocess.Popen(["sleep", "600"])  # started after this process (seconds after: its imports alone)
    try:
        assert int(owners.owner_tag(process.pid).split("|")[3]) > int(started)  # each process's own start time
    finally:
        process.kill()
        process.wait()
    assert owners.owner_is_gone(owners.owner_tag()) is False
    assert owners.describe(owners.owner_tag()) == f"pid {os.getpid()} on {socket.gethostname()}"


def test_an_ended_process_is_gone_and_so_is_a_reused_pid_or_an_earlier_boot():
    assert owners.owner_is_gone(dead_owner()) is True
    host, boot, pid, started = owners.owner_tag().split("|")
    assert owners.owner_is_gone(f"{host}|{boot}|{pid}|{int(started) + 1}") is True  # same pid, another process
    assert owners.owner_is_gone(f"{host}|another-boot|{pid}|{started}") is True  # the machine rebooted since


def test_an_owner_on_another_host_or_unreadable_is_never_taken_for_gone():
    _, boot, pid, started = dead_owner().split("|")
    assert owners.owner_is_gone(f"another-host.example|{boot}|{pid}|{started}") is False
    assert owners.owner_is_gone("") is False and owners.owner_is_gone("a|b|c") is False


@integration
def test_end_orphans_ends_killed_only_the_running_runs_whose_owner_here_is_gone(workspace):
    client = tracking.connect(workspace)
    experiment = tracking.ensure_experiment(client, workspace)
    other = tracking.ensure_experiment(client, workspace, "elsewhere")
    gone = dead_owner()

    def run(owner: str, experiment_id: str = experiment, status: str = "RUNNING") -> str:
        run_id = client.create_run(experiment_id, tags={owners.OWNER_TAG: owner}).info.run_id
        if status != "RUNNING":
            client.set_terminated(run_id, status)
        return run_id

    orphan = run(gone)
    live = run(owners.owner_tag())
    remote = run(f"another-host.example|{gone.split('|', 1)[1]}")
    finished = run(gone, status="FINISHED")
    failed = run(gone, status="FAILED")
    not_asked = run(gone, experiment_id=other)
    assert owners.end_orphans(client, [experiment], "pipeline run abc") == [orphan]
    everyone = (orphan, live, remote, finished, failed, not_asked)
    status = {run_id: client.get_run(run_id).info.status for run_id in everyone}
    assert status == {orphan: "KILLED", live: "RUNNING", remote: "RUNNING", finished: "FINISHED", failed: "FAILED",
                      not_asked: "RUNNING"}
    reason = client.get_run(orphan).data.tags[owners.ERROR_TAG]
    assert reason.startswith(f"killed: the process that ran it ({owners.describe(gone)}) ended without closing it")
    assert reason.endswith("by pipeline run abc")
    assert all(owners.ERROR_TAG not in client.get_run(r).data.tags for r in (live, remote, finished, failed))
    assert owners.end_orphans(client, [experiment], "again") == []  # ended once
