"""A seam for the tests that kill a process at a chosen point (registration interrupted half-way).

With `MLOPS_TEST_PAUSE=<point>:<file>` in the environment, the process that reaches <point> creates
<file> and waits there until it is killed. Unset (always, outside tests), it does nothing.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

from ml_service import env as envvars


def pause_point(point: str) -> None:
    """Wait here for ever when the environment asks for it (see the module docstring)."""
    wanted, _, marker = envvars.MLOPS_TEST_PAUSE.get().partition(":")
    if wanted != point or not marker:
        return
    Path(marker).write_text(str(os.getpid()))
    while True:
        time.sleep(60)
