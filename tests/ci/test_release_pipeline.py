"""The default model's release pipeline (<project>-release.yml) run by the local engine, end to end:
model -> image -> QA container -> smoke test -> approval on production -> production in GitOps mode
(no cluster here)."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from ml_service.config import load_settings
from ml_service.deploy.production import gitops_target
from tests.conftest import ROOT, workspace_env

pytestmark = [pytest.mark.integration, pytest.mark.docker]
MODEL = "test_release_model"


def mlops(*args):
    return subprocess.run([sys.executable, "-m", "ml_service.cli", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=900, env=dict(os.environ))


@pytest.fixture
def release_ws(docker_engine, tmp_path, monkeypatch):
    for key, value in {**workspace_env(tmp_path / "ws"), "MLOPS_MODEL_NAME": MODEL,
                       "MLOPS_USER": "releaser@example.com"}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("MLOPS_SCORING_KEYS", raising=False)
    monkeypatch.delenv("MLOPS_MODEL", raising=False)  # the default model's release
    yield load_settings()
    for container in docker_engine.containers.list(all=True, filters={"label": f"mlops.model.name={MODEL}"}):
        container.remove(force=True)
    for image in docker_engine.images.list(name=f"mlops/{MODEL}"):
        docker_engine.images.remove(image.id, force=True)


def test_release_runs_qa_waits_for_approval_then_commits_production(release_ws):
    registered = mlops("pipeline", "run")
    assert f"registered {MODEL} version 1" in registered.stdout, registered.stderr
    release = f"{release_ws.model.project}-release"
    started = mlops("ci", "run", release, "--param", f"model={MODEL}:1")
    assert started.returncode == 0, started.stdout + started.stderr
    assert "is waiting for approval of stage Production" in started.stdout
    assert "Smoke test QA  Succeeded" in started.stdout
    assert "live" in mlops("deploy", "list").stdout
    pending = mlops("ci", "pending").stdout
    assert "environment production" in pending

    approved = mlops("ci", "approve", "--comment", "QA looks right")
    assert approved.returncode == 0, approved.stdout + approved.stderr
    assert "approved by releaser@example.com" in approved.stdout and f"({release}): succeeded" in approved.stdout
    repo, values_file, _ = gitops_target(release_ws, MODEL)  # each model has its own desired state
    values = (repo / values_file).read_text()
    assert "tag: '1'" in values and MODEL in values
    logs = mlops("ci", "logs", "1", "--step", "production").stdout
    assert "NOTHING WAS APPLIED TO A CLUSTER" in logs
    listing = mlops("deploy", "list").stdout
    assert "production" in listing and "desired" in listing and "qa" in listing
    shown = mlops("ci", "show", "1").stdout
    assert "approved releaser@example.com" in shown and "QA looks right" in shown
