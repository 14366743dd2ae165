"""Start the real scoring service as a process on 127.0.0.1 for tests."""
import os
import resource
import socket
import subprocess
import sys
from contextlib import contextmanager

from ml_service.config import PACKAGE_ROOT
from ml_service.deploy.smoke import wait_ready


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _limit_files(nofile: int):
    def preexec():
        resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))
    return preexec


@contextmanager
def scoring_server(env: dict, log_path, nofile: int | None = None, workers: int = 1):
    """The service on a free port: yields (process, base URL); stopped with SIGTERM (or killed) at exit.

    nofile: the open-file limit of the server process (`ulimit -n`), as on hosts where it is 1024.
    """
    port = free_port()
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "ml_service.serving", "--port", str(port),
                                 "--workers", str(workers)],
                                env={**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "MLOPS_DRAIN_SECONDS": "0.2",
                                     **env},
                                cwd=PACKAGE_ROOT,
                                stdout=log, stderr=subprocess.STDOUT,
                                preexec_fn=_limit_files(nofile) if nofile else None)
        url = f"http://127.0.0.1:{port}"
        try:
            wait_ready(url, 60)
            yield proc, url
        finally:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(10)
