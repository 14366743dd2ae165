"""Issue 24, finding 7: with the MLflow server down, `mlops model list` is an error (exit non-zero, one line), never
"no registered versions" with exit 0 (which a retrain would take for a first run); `mlops pipeline run` says the
server is down within MLOPS_SERVER_WAIT seconds (it was silent for minutes, then printed a 200-line traceback).
Real CLI processes against a port nothing listens on."""
from __future__ import annotations

import socket
import subprocess
import sys

import pytest

from ml_service.team import server as team
from ml_service.workspace import registry, tracking
from tests.conftest import ROOT

pytestmark = pytest.mark.integration


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]  # closed again when this returns: nothing listens there


def test_model_list_with_the_server_down_fails_in_one_line(workspace, monkeypatch):
    import os

    team.point_at(workspace, f"http://127.0.0.1:{closed_port()}")
    env = {**os.environ, "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "5",
           "MLOPS_SERVER_WAIT": "1"}
    listed = subprocess.run([sys.executable, "-m", "ml_service.cli", "model", "list"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=300)
    assert listed.returncode != 0, listed.stdout
    assert "no registered versions" not in listed.stdout
    assert "Traceback" not in listed.stderr and len(listed.stderr.strip().splitlines()) == 1, listed.stderr


def test_a_model_without_versions_is_still_an_empty_list(workspace):
    assert registry.list_versions(tracking.connect(workspace), "never_registered") == []


def test_pipeline_run_with_the_server_down_names_it_in_one_line_and_records_nothing(workspace):
    import os

    uri = f"http://127.0.0.1:{closed_port()}"
    team.point_at(workspace, uri)
    env = {**os.environ, "MLOPS_SERVER_WAIT": "1"}
    ran = subprocess.run([sys.executable, "-m", "ml_service.cli", "pipeline", "run"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=300)
    assert ran.returncode == 1, ran.stdout
    errors = [line for line in ran.stderr.splitlines() if line.startswith("error:")]
    assert "Traceback" not in ran.stderr and len(errors) == 1 and uri in errors[0], ran.stderr
    assert not list((workspace.state_dir / "pipelines").glob("**/*.json"))  # no step ran, nothing was recorded


def test_the_wait_for_a_server_ends_as_soon_as_it_answers_even_with_401():
    from http.server import BaseHTTPRequestHandler, HTTPServer
    from threading import Thread

    class Refuse(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's name)
            self.send_response(401)
            self.end_headers()

        def log_message(self, *args):
            pass
    server = HTTPServer(("127.0.0.1", 0), Refuse)
    Thread(target=server.serve_forever, daemon=True).start()
    try:
        tracking.check_server(f"http://127.0.0.1:{server.server_port}", wait_s=0)  # answered: no error
    finally:
        server.shutdown()
    with pytest.raises(tracking.ServerDownError):
        tracking.check_server(f"http://127.0.0.1:{closed_port()}", wait_s=0)
