"""Issue 24, finding 7: with the MLflow server down, `mlops model list` is an error (exit non-zero, one line), never
"no registered versions" with exit 0 (which a retrain would take for a first run). A real CLI process against a
port nothing listens on."""
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
    env = {**os.environ, "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "5"}
    listed = subprocess.run([sys.executable, "-m", "ml_service.cli", "model", "list"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=300)
    assert listed.returncode != 0, listed.stdout
    assert "no registered versions" not in listed.stdout
    assert "Traceback" not in listed.stderr and len(listed.stderr.strip().splitlines()) == 1, listed.stderr


def test_a_model_without_versions_is_still_an_empty_list(workspace):
    assert registry.list_versions(tracking.connect(workspace), "never_registered") == []
