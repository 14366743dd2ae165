"""Step processes die with their pipeline run, even when the runner is killed with SIGKILL.

Each step runs in a session of its own (so a timeout kills its whole tree), which also means
nothing kills it when the runner dies. The watchdog is a process forked from the runner before
anything else starts, in a session of its own (a kill of the runner's process group spares it).
The runner tells it, one line at a time on a pipe, which process groups and containers are live;
when the pipe reaches end-of-file (the runner ended, normally or not: the kernel closes the
pipe of a dead process) it kills the groups and containers still listed, then exits.
"""
from __future__ import annotations

import os
import signal
import subprocess

from ml_service.processes import kill_group


def _watch(read_fd: int) -> None:
    os.setsid()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    groups: set[int] = set()
    containers: set[str] = set()
    buffer = b""
    while True:
        chunk = os.read(read_fd, 4096)
        if not chunk:
            break
        buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        for line in lines:
            verb, _, what = line.decode().partition(" ")
            if verb == "group":
                groups.add(int(what))
            elif verb == "ungroup":
                groups.discard(int(what))
            elif verb == "container":
                containers.add(what)
            elif verb == "uncontainer":
                containers.discard(what)
    for pgid in groups:
        kill_group(pgid)
    for name in containers:
        subprocess.run(["docker", "rm", "--force", name], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       check=False)


class Watchdog:
    """The runner's end: `watch(pgid)` / `release(pgid)` for step groups, `container(name)` / `release_container`."""

    def __init__(self):
        read_fd, self._write_fd = os.pipe()  # both ends close-on-exec: no step inherits them
        self.pid = os.fork()
        if self.pid == 0:  # the watchdog
            code = 0
            try:
                os.close(self._write_fd)
                _watch(read_fd)
            except BaseException:
                code = 1
            finally:
                os._exit(code)
        os.close(read_fd)

    def _send(self, line: str) -> None:
        if self._write_fd is not None:
            os.write(self._write_fd, (line + "\n").encode())

    def watch(self, pgid: int) -> None:
        """Kill this process group if the runner dies."""
        self._send(f"group {pgid}")

    def release(self, pgid: int) -> None:
        """The group ended: forget it (its id may be reused)."""
        self._send(f"ungroup {pgid}")

    def watch_container(self, name: str) -> None:
        """Remove this container if the runner dies."""
        self._send(f"container {name}")

    def release_container(self, name: str) -> None:
        """The container is gone: forget it."""
        self._send(f"uncontainer {name}")

    def close(self) -> None:
        """The run ended: let the watchdog exit (killing whatever is still listed) and reap it."""
        if self._write_fd is not None:
            os.close(self._write_fd)
            self._write_fd = None
            os.waitpid(self.pid, 0)
