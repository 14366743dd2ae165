"""Killing a process tree: the whole group (children and grandchildren, even those that ignore SIGTERM) is gone;
an id that leads no group any more (reused by an unrelated process) is left alone; a gone group is no error."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ml_service.processes import kill_group, start_watched

pytestmark = pytest.mark.integration  # real processes

WAIT = 30  # seconds a wait for an event may take before the test fails (a bound, never a measure of speed)

# A leader that starts a child that starts a grandchild; each ignores SIGTERM and SIGINT, writes its pid, sleeps.
TREE = r"""
import os, signal, subprocess, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
signal.signal(signal.SIGINT, signal.SIG_IGN)
depth, folder = int(sys.argv[1]), sys.argv[2]
if depth < 2:
    subprocess.Popen([sys.executable, __file__, str(depth + 1), folder])
with open(f"{folder}/{depth}.pid.tmp", "w") as f:
    f.write(str(os.getpid()))
os.rename(f"{folder}/{depth}.pid.tmp", f"{folder}/{depth}.pid")
while True:
    time.sleep(60)
"""


def alive(pid: int) -> bool:
    """The process exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


def wait_until(predicate) -> bool:
    deadline = time.monotonic() + WAIT
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@pytest.fixture
def tree(tmp_path):
    """A three-level process tree in a session (and process group) of its own; its pids once all have started."""
    script = tmp_path / "tree.py"
    script.write_text(TREE)
    leader = subprocess.Popen([sys.executable, str(script), "0", str(tmp_path)], start_new_session=True)
    pids = [tmp_path / f"{depth}.pid" for depth in range(3)]
    try:
        assert wait_until(lambda: all(p.exists() for p in pids)), "the tree never started"
        yield leader, [int(p.read_text()) for p in pids]
    finally:
        for pid in [int(p.read_text()) for p in pids if p.exists()]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        leader.wait()


def test_the_whole_tree_dies_children_and_grandchildren_included(tree):
    leader, pids = tree
    assert pids[0] == leader.pid and all(os.getpgid(pid) == leader.pid for pid in pids)
    kill_group(leader.pid)
    assert leader.wait(WAIT) == -signal.SIGKILL  # SIGKILL by default: ignoring SIGTERM does not save it
    assert wait_until(lambda: not any(alive(pid) for pid in pids)), [pid for pid in pids if alive(pid)]


def test_another_signal_can_be_asked_for(tree):
    leader, pids = tree
    kill_group(leader.pid, signal.SIGTERM)  # ignored by every member: all still run
    assert leader.poll() is None and all(alive(pid) for pid in pids)
    kill_group(leader.pid, signal.SIGUSR1)  # not ignored: the default action ends them
    assert leader.wait(WAIT) == -signal.SIGUSR1
    assert wait_until(lambda: not any(alive(pid) for pid in pids))


def test_an_id_that_leads_no_group_is_left_alone(tmp_path):
    """The group's id was reused by an unrelated process (here: one in the test's own group): it must survive."""
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        assert os.getpgid(bystander.pid) != bystander.pid  # it leads no group
        kill_group(bystander.pid)
        assert bystander.poll() is None and alive(bystander.pid)
    finally:
        bystander.kill()
        bystander.wait()


def test_a_group_that_is_already_gone_is_no_error(tmp_path):
    gone = subprocess.Popen([sys.executable, "-c", "pass"], start_new_session=True)
    gone.wait()
    kill_group(gone.pid)  # no such group any more
    kill_group(gone.pid, signal.SIGTERM)


# An engine that dies (os._exit, as a kill -9 would end it) after starting a step and before telling its watchdog.
ENGINE_DIES_BEFORE_WATCH = r"""
import os, sys
from ml_service.processes import start_watched

class DiesWhileRegistering:
    def watch(self, pid):
        print(pid, flush=True)
        os._exit(9)

start_watched(["sh", "-c", 'touch "$0"; exec sleep 600', sys.argv[1]], DiesWhileRegistering())
"""


def test_a_step_whose_engine_dies_before_registering_it_never_runs(tmp_path):
    marker = tmp_path / "ran"
    engine = subprocess.run([sys.executable, "-c", ENGINE_DIES_BEFORE_WATCH, str(marker)], capture_output=True,
                            text=True, timeout=WAIT, cwd=Path(__file__).resolve().parents[1])
    assert engine.returncode == 9, engine.stderr
    pid = int(engine.stdout)
    try:
        assert wait_until(lambda: not alive(pid)), "the step outlived an engine that never registered it"
        assert not marker.exists()
    finally:
        kill_group(pid)


def test_a_watched_step_runs_as_its_own_program_reading_dev_null_and_dies_with_its_watchdog(tmp_path):
    from ml_service.pipelines.watchdog import Watchdog

    watchdog = Watchdog()
    proc = start_watched(["sh", "-c", 'readlink /proc/$$/fd/0 > "$0"; exec sleep 600', str(tmp_path / "stdin")],
                         watchdog)
    try:
        program = Path(f"/proc/{proc.pid}/cmdline")
        assert wait_until(lambda: program.read_text().split("\0")[0] == "sleep")  # the same pid, exec'd at last
        assert os.getpgid(proc.pid) == proc.pid  # a session (and group) of its own
        assert (tmp_path / "stdin").read_text().strip() == "/dev/null"  # the gate's pipe is not the step's stdin
        watchdog.close()  # the engine's end: what is listed dies
        assert proc.wait(timeout=WAIT) == -signal.SIGKILL
    finally:
        kill_group(proc.pid)
        proc.wait()
        watchdog.close()


def test_a_missing_program_is_the_error_popen_gives_not_a_shell_exit(tmp_path):
    from ml_service.pipelines.watchdog import Watchdog

    watchdog = Watchdog()
    try:
        with pytest.raises(FileNotFoundError):
            start_watched(["no-such-program-here"], watchdog, env={"PATH": str(tmp_path)})
        with pytest.raises(FileNotFoundError):
            start_watched(["./missing.sh"], watchdog, cwd=tmp_path)
    finally:
        watchdog.close()


def test_a_relative_program_is_found_from_the_new_processs_folder_as_exec_finds_it(tmp_path):
    from ml_service.pipelines.watchdog import Watchdog

    folder = tmp_path / "step"
    folder.mkdir()
    script = folder / "run.sh"
    script.write_text('#!/bin/sh\necho ran > "$(pwd)/out"\n')
    script.chmod(0o755)
    watchdog = Watchdog()
    try:
        proc = start_watched(["./run.sh"], watchdog, cwd=folder)  # not found from this process's folder
        assert proc.wait(timeout=WAIT) == 0
        assert (folder / "out").read_text() == "ran\n"
    finally:
        watchdog.close()
