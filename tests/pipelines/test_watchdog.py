"""The watchdog (pipelines/watchdog.py): when the runner ends, the process groups still listed are killed and
released ones are spared. Real processes in sessions of their own."""
import subprocess

import pytest

from ml_service.pipelines.watchdog import Watchdog

pytestmark = pytest.mark.integration


def test_groups_still_listed_when_the_runner_ends_are_killed_and_released_ones_spared():
    listed = subprocess.Popen(["sleep", "600"], start_new_session=True)
    released = subprocess.Popen(["sleep", "600"], start_new_session=True)
    try:
        watchdog = Watchdog()
        watchdog.watch(listed.pid)
        watchdog.watch(released.pid)
        watchdog.release(released.pid)
        watchdog.close()  # the pipe closes: the watchdog kills what is still listed, then exits (reaped here)
        assert listed.wait(timeout=60) == -9
        assert released.poll() is None
        watchdog.close()  # closing twice is harmless
    finally:
        for process in (listed, released):
            if process.poll() is None:
                process.kill()
                process.wait()
