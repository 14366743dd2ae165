"""Process groups: every step, job and server the platform starts runs in a session of its own, so
that killing it kills its whole tree (children and grandchildren included). One home for that."""
from __future__ import annotations

import os
import signal


def kill_group(pid: int, sig: int = signal.SIGKILL) -> None:
    """Send sig to the process group led by pid; a group that is already gone is fine."""
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass
