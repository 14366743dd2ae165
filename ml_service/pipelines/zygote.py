"""A preloading fork server for the `local` compute target.

At the start of a pipeline run, a server process imports the heavy modules the steps declare
(`imports:` in the pipeline file) while the runner opens the tracking store on the other core.
Each step is then forked from it: still its own process, in its own session (so a timeout kills
its whole tree and a crash cannot touch the runner), but without paying the imports again.

Protocol, one JSON object a line: the server prints {"ready": ...} once, then for every
request {"spec", "log", "cwd"} on stdin it answers {"pid"} when the child starts and
{"returncode"} when it ends.
"""
from __future__ import annotations

import importlib
import json
import os
import select
import signal
import subprocess
import sys
import traceback
from pathlib import Path

from ml_service.processes import kill_group
from ml_service.pipelines.compute import ProcessResult


def _die_with_parent() -> None:
    """PR_SET_PDEATHSIG: the kernel kills this process when the fork server dies (Linux; elsewhere a no-op)."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _child(request: dict) -> int:
    os.setsid()
    _die_with_parent()
    if os.getppid() == 1:  # the server died before the line above
        os._exit(1)
    devnull = os.open(os.devnull, os.O_RDONLY)
    log = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(devnull, 0)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.chdir(request["cwd"])
    for name in request.get("unset", []):  # the step's own environment (e.g. the run's server user)
        os.environ.pop(name, None)
    os.environ.update(request.get("env", {}))
    sys.path.insert(0, request["cwd"])  # what `python -m` does for a fresh step process
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    from ml_service.pipelines import step_host

    return step_host.main([request["spec"]])


def serve(modules: list[str]) -> None:
    """Server main loop: preload, announce, then fork one child per request."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the runner decides when we stop
    failed = {}
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception as exc:  # a step that needs it will fail with the real error
            failed[name] = f"{type(exc).__name__}: {exc}"
    print(json.dumps({"ready": True, "failed": failed}), flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                code = _child(request)
            except BaseException:
                traceback.print_exc()
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        print(json.dumps({"pid": pid}), flush=True)
        _, status = os.waitpid(pid, 0)
        print(json.dumps({"returncode": os.waitstatus_to_exitcode(status)}), flush=True)


class Zygote:
    """The runner's handle on a fork server; falls back to fresh processes if it fails."""

    def __init__(self, modules: list[str], env: dict[str, str], cwd: Path, log_path: Path, watchdog=None):
        self.env = dict(env)
        self._log = open(log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ml_service.pipelines.zygote", *modules], env=env, cwd=cwd,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log, start_new_session=True,
        )
        self.watchdog = watchdog
        if watchdog is not None:
            watchdog.watch(self.proc.pid)
        self.ready = False

    def _read(self, timeout: float | None = None) -> dict | None:
        if timeout is not None and not select.select([self.proc.stdout], [], [], timeout)[0]:
            return None
        line = self.proc.stdout.readline()
        if not line:
            raise OSError("the fork server exited")
        return json.loads(line)

    def wait_ready(self) -> bool:
        """Block until the preload finished; False if the server died."""
        if not self.ready:
            try:
                self.ready = bool(self._read())
            except (OSError, ValueError):
                return False
        return self.ready

    def run(self, spec_path: Path, cwd: Path, log_path: Path, timeout_s: float,
            env: dict[str, str] | None = None) -> ProcessResult:
        """Fork a child for one step and wait for it, killing its session on timeout or interrupt; env: the step's
        environment (what differs from the server's is set in the child; sent on the pipe, never written)."""
        request = {"spec": str(spec_path), "log": str(log_path), "cwd": str(cwd)}
        if env is not None:
            request["env"] = {k: v for k, v in env.items() if self.env.get(k) != v}
            request["unset"] = [k for k in self.env if k not in env]
        self.proc.stdin.write((json.dumps(request) + "\n").encode())
        self.proc.stdin.flush()
        pid = self._read()["pid"]
        if self.watchdog is not None:
            self.watchdog.watch(pid)
        try:
            reply = self._read(timeout_s)
            if reply is None:
                kill_group(pid)
                self._read()
                return ProcessResult(-signal.SIGKILL, timed_out=True)
            return ProcessResult(reply["returncode"])
        except BaseException:
            kill_group(pid)
            raise
        finally:
            if self.watchdog is not None:
                self.watchdog.release(pid)

    def close(self) -> None:
        """Stop the server (it holds no state worth keeping)."""
        if self.proc.poll() is None:
            kill_group(self.proc.pid)
            self.proc.wait()
        if self.watchdog is not None:
            self.watchdog.release(self.proc.pid)
        for stream in (self.proc.stdin, self.proc.stdout):
            stream.close()
        self._log.close()


if __name__ == "__main__":
    serve(sys.argv[1:])
