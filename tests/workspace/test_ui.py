"""`mlops ui` answers with the workspace's own store (folded from tests/serving/test_promises_serving.py, issue 19):
the MLflow UI and its REST API on 127.0.0.1, over the workspace's real sqlite store, list this workspace's
registered models and nothing else."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from tests.conftest import ROOT, fresh_store
from tests.support.procs import session_commands

pytestmark = pytest.mark.integration


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(url: str, process: subprocess.Popen, timeout: float = 180) -> bytes:
    """GET url once the server answers (waits on the event "it answered", not on a duration)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return response.read()
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            if process.poll() is not None:
                raise AssertionError(f"the server exited with {process.returncode}: {process.stdout.read()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{url} did not answer within {timeout} s")
            time.sleep(0.2)


def test_mlops_ui_answers_with_the_workspace(workspace):
    from ml_service.workspace.tracking import connect

    workspace.state_dir.mkdir(parents=True, exist_ok=True)
    fresh_store(workspace.state_dir / "mlflow.db")
    connect(workspace).create_registered_model(workspace.model_name)
    port = free_port()
    ui = subprocess.Popen([sys.executable, "-m", "ml_service.cli", "ui", "--port", str(port)], cwd=ROOT,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        page = wait_for(f"http://127.0.0.1:{port}/", ui)
        assert b"<html" in page.lower() or b"<!doctype html" in page.lower()
        search = f"http://127.0.0.1:{port}/api/2.0/mlflow/registered-models/search?max_results=10"
        with urllib.request.urlopen(search, timeout=30) as response:
            models = json.loads(response.read())["registered_models"]
        assert [m["name"] for m in models] == [workspace.model_name]  # this workspace's registry, nothing else
        beside = session_commands(ui.pid)  # MLflow's job runner is off: no process polls for jobs no one runs
        assert any(" server " in command for command in beside), beside
        assert not [command for command in beside if "huey" in command or "_job_runner" in command], beside
    finally:
        if ui.poll() is None:
            os.killpg(ui.pid, signal.SIGTERM)
            try:
                ui.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(ui.pid, signal.SIGKILL)
                ui.wait(10)


def test_against_a_team_server_mlops_ui_names_the_server_and_starts_nothing(tmp_path, monkeypatch, capsys):
    """The other side of `is_local_store`: a workspace on an MLflow server has its own UI; no local server starts
    and no local state is made."""
    from ml_service.cli import main

    monkeypatch.setenv("MLOPS_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("MLOPS_TRACKING_URI", "http://127.0.0.1:9")
    assert main(["ui", "--port", str(free_port())]) == 0
    assert "http://127.0.0.1:9" in capsys.readouterr().out and not (tmp_path / "state").exists()
