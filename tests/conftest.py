"""Shared fixtures of the platform's tests. Every workspace is a real MLflow sqlite store in a temp folder.

The platform's tests name no model project: the ones that need one use the default project of
mlops.yml (`load_settings().model`), whatever it is.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from ml_service.config import PACKAGE_ROOT, load_settings

ROOT = PACKAGE_ROOT


def workspace_env(state_dir: Path) -> dict[str, str]:
    """Environment that points the project at a workspace under state_dir."""
    return {"MLOPS_ROOT": str(ROOT), "MLOPS_STATE_DIR": str(state_dir), "MLFLOW_DISABLE_TELEMETRY": "true"}


@pytest.fixture
def workspace(tmp_path, monkeypatch):
    """Settings for a fresh, empty workspace in a temp dir (environment patched for subprocesses too)."""
    for key, value in workspace_env(tmp_path / "ws").items():
        monkeypatch.setenv(key, value)
    for key in ("MLOPS_TRACKING_URI", "MLOPS_ARTIFACT_ROOT", "MLOPS_BUILD_ID", "MLOPS_BUILD_URI", "MLOPS_MODEL",
                "MLOPS_MODEL_NAME", "MLOPS_EXPERIMENT"):
        monkeypatch.delenv(key, raising=False)
    return load_settings()


@pytest.fixture(scope="session")
def docker_engine():
    """A Docker SDK client. Without an engine: skip, or fail when MLOPS_REQUIRE_DOCKER=1 (CI)."""
    import os

    from ml_service.containers import ImageError, docker_client

    try:
        return docker_client()
    except ImageError as exc:
        if os.environ.get("MLOPS_REQUIRE_DOCKER") == "1":
            pytest.fail(str(exc))
        pytest.skip(str(exc))


@pytest.fixture(scope="session")
def image_registry(tmp_path_factory, docker_engine):
    """A real image registry (Debian's docker-registry, the CNCF distribution server) on 127.0.0.1.

    Without the binary: skip, or fail when MLOPS_REQUIRE_DOCKER=1 (CI installs it with the engine).
    """
    import os
    import shutil
    import socket
    import subprocess
    import time
    import urllib.request

    binary = shutil.which("docker-registry")
    if binary is None:
        why = "docker-registry is not installed (environment_setup/docker_engine.sh installs it)"
        pytest.fail(why) if os.environ.get("MLOPS_REQUIRE_DOCKER") == "1" else pytest.skip(why)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    base = tmp_path_factory.mktemp("registry")
    config = base / "config.yml"
    config.write_text(f"version: 0.1\nlog: {{level: warn}}\nstorage: {{filesystem: {{rootdirectory: {base}/data}}}}\n"
                      f"http: {{addr: '127.0.0.1:{port}'}}\n")
    log = open(base / "registry.log", "w")
    proc = subprocess.Popen([binary, "serve", str(config)], stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=2)
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"the registry did not start: {(base / 'registry.log').read_text()[-2000:]}")
            time.sleep(0.2)
    yield f"127.0.0.1:{port}"
    proc.terminate()
    proc.wait(10)
    log.close()
