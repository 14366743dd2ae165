"""Start the real scoring service as a process on 127.0.0.1 for tests."""
import os
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


@contextmanager
def scoring_server(env: dict, log_path):
    port = free_port()
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "ml_service.serving", "--port", str(port)],
                                env={**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", **env}, cwd=PACKAGE_ROOT,
                                stdout=log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        try:
            wait_ready(url, 60)
            yield proc, url
        finally:
            proc.terminate()
            proc.wait(10)
