"""`mlops doctor` says what is missing and what to do, and exits non-zero when the flow cannot run."""
import os
import socket
import subprocess
import sys

import pytest

from tests.conftest import ROOT


def doctor(tmp_path, **env):
    base = {k: v for k, v in os.environ.items() if not k.startswith("MLOPS_")}
    return subprocess.run([sys.executable, "-m", "ml_service.cli", "doctor"], capture_output=True, text=True,
                          env={**base, "MLOPS_ROOT": str(ROOT), "MLOPS_STATE_DIR": str(tmp_path / "ws"), **env})


def test_no_docker_engine_is_a_failure_with_the_one_command_to_run(tmp_path):
    result = doctor(tmp_path, DOCKER_HOST=f"unix://{tmp_path}/no-engine.sock")
    assert result.returncode == 1
    assert "FAIL  docker engine" in result.stdout
    assert "to fix: sudo bash environment_setup/docker_engine.sh" in result.stdout
    assert "Traceback" not in result.stderr


def test_an_unreachable_workspace_server_is_a_failure(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens there
    result = doctor(tmp_path, MLOPS_TRACKING_URI=f"http://127.0.0.1:{port}")
    assert result.returncode == 1 and "FAIL  workspace" in result.stdout and f"127.0.0.1:{port}" in result.stdout


@pytest.mark.docker
def test_a_ready_machine_passes_and_warns_about_what_is_optional(tmp_path, docker_engine):
    result = doctor(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ok    docker engine" in result.stdout and "ok    base image" in result.stdout
    assert "ok    workspace" in result.stdout and "production" in result.stdout
