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


# The new process first reads a line on stdin: the engine writes it once the watchdog knows the process's group.
# End of file there (the engine died first) ends it unrun; else it becomes the step, its stdin /dev/null.
_GATE = 'IFS= read -r _ || exit 137; exec "$@" </dev/null'


def start_watched(argv: list[str], watchdog, **popen):
    """Popen(argv, stdin=/dev/null) in a session of its own that watchdog kills should the engine die, no gap between.

    Without a gate an engine killed (kill -9) after the fork but before it told the watchdog would leave the
    step running for ever. So the new process first waits on a pipe: the engine registers its group with the
    watchdog, then lets it exec argv; if the engine dies first, the pipe ends and the process exits unrun.
    """
    import shutil
    import subprocess

    if watchdog is None:
        return subprocess.Popen(argv, start_new_session=True, stdin=subprocess.DEVNULL, **popen)
    env = popen.get("env")
    program = str(argv[0])
    if "/" in program:  # a path: found from the new process's folder, as exec finds it
        found = os.access(os.path.join(str(popen.get("cwd") or "."), program), os.X_OK)
    else:
        found = shutil.which(program, path=env.get("PATH", os.defpath) if env is not None else None) is not None
    if not found:  # what Popen would raise, rather than sh's exit 127
        raise FileNotFoundError(2, "No such file or directory", program)
    gate_read, gate_write = os.pipe()
    try:
        proc = subprocess.Popen(["/bin/sh", "-c", _GATE, "gate", *argv], stdin=gate_read, start_new_session=True,
                                **popen)
    except BaseException:
        os.close(gate_write)
        raise
    finally:
        os.close(gate_read)
    try:
        watchdog.watch(proc.pid)
        os.write(gate_write, b"go\n")
    finally:
        os.close(gate_write)
    return proc
