"""`mlops serve models:/NAME@ALIAS`: the scoring service started on the version the alias names, read when it
starts (folded from test_promises_serving.py, issue 19). Real MLflow store, a real pipeline run, real HTTP on
127.0.0.1. (`mlops ui`, the other half of that file: tests/workspace/test_ui.py.)"""
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

from ml_service.config import load_settings
from tests.conftest import ROOT, workspace_env
from tests.support.cli import mlops

pytestmark = pytest.mark.integration


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    """Two registered versions of the default model project."""
    with pytest.MonkeyPatch.context() as patch:
        for key, value in workspace_env(tmp_path_factory.mktemp("serve")).items():
            patch.setenv(key, value)
        for key in ("MLOPS_TRACKING_URI", "MLOPS_ARTIFACT_ROOT", "MLOPS_MODEL", "MLOPS_MODEL_NAME",
                    "MLOPS_EXPERIMENT", "MLOPS_SCORING_KEYS"):
            patch.delenv(key, raising=False)
        settings = load_settings()
        first = mlops("pipeline", "run")  # in this process: the servers below are the processes under test
        assert first.returncode == 0 and "version 1" in first.stdout, first.stderr
        from ml_service.workspace.tracking import connect

        client = connect(settings)
        source = client.get_model_version(settings.model_name, "1")
        client.create_model_version(settings.model_name, source.source, run_id=source.run_id)  # version 2
        yield settings


def wait_for(url: str, process: subprocess.Popen, timeout: float = 120) -> bytes:
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


def start(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "ml_service.cli", *args], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)


def test_serve_models_uri_at_champion_serves_the_version_the_alias_names(ws):
    from ml_service.workspace.tracking import connect

    client = connect(ws)
    assert str(client.get_model_version_by_alias(ws.model_name, "champion").version) == "1"  # not the latest
    port = free_port()
    server = start("serve", "--model", f"models:/{ws.model_name}@champion", "--port", str(port))
    try:
        meta = json.loads(wait_for(f"http://127.0.0.1:{port}/v2/models/{ws.model_name}", server))
        assert meta["name"] == ws.model_name and meta["versions"] == ["1"]
        from ml_service.deploy.payload import smoke_payload
        from ml_service.deploy.smoke import smoke_test

        result = smoke_test(f"http://127.0.0.1:{port}", timeout_s=30, payload=smoke_payload(ws))
        assert "malformed request refused" in result.checks
    finally:
        stop(server)
    client.set_registered_model_alias(ws.model_name, "champion", "2")  # the alias moves: so does `serve`
    port = free_port()  # two worker processes: the model `serve` chose reaches them (given as values, not os.environ)
    server = start("serve", "--model", f"models:/{ws.model_name}@champion", "--port", str(port), "--workers", "2")
    try:
        meta = json.loads(wait_for(f"http://127.0.0.1:{port}/v2/models/{ws.model_name}", server))
        assert meta["versions"] == ["2"]
    finally:
        stop(server)
        client.set_registered_model_alias(ws.model_name, "champion", "1")


def test_serve_runs_a_version_through_the_score_module_of_its_own_project(workspace, tmp_path):
    """`mlops serve --model NAME:VERSION` of another project than the selected one (cli/serve.py for_registered):
    the version's own project's score module scores it: breast_cancer_classification's loads a model with the
    sklearn flavor alone, which the default scorer (MLflow's pyfunc) cannot load."""
    import pickle

    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    from ml_service.workspace.tracking import connect
    from tests.support.registered import register_folder
    from tests.support.rows_score import mlmodel

    other = workspace.select("breast_cancer_classification").model
    assert other.project != workspace.project and other.score_module
    frame = pd.DataFrame({"a": [0.0, 1.0, 2.0, 3.0, 4.0, 5.0], "b": [1.0, 0.0, 1.0, 0.0, 1.0, 0.0]})
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "model.pkl").write_bytes(pickle.dumps(LogisticRegression().fit(frame, [0, 0, 0, 1, 1, 1])))
    text = mlmodel([{"type": "double", "name": "a"}, {"type": "double", "name": "b"}], output="int64")
    lines = text.splitlines(keepends=True)  # the sklearn flavor only: what the project's module loads, not pyfunc
    (folder / "MLmodel").write_text(lines[0] + "".join(lines[5:]))
    assert "python_function" not in (folder / "MLmodel").read_text()
    version = register_folder(connect(workspace), other.name, folder, other.experiment)
    port = free_port()
    server = start("serve", "--model", f"{other.name}:{version.version}", "--port", str(port))
    try:
        wait_for(f"http://127.0.0.1:{port}/v2/models/{other.name}", server)
        request = urllib.request.Request(f"http://127.0.0.1:{port}/score", method="POST",
                                         data=json.dumps({"data": [{"a": 4.5, "b": 1.0}]}).encode(),
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            scored = json.loads(response.read())
    finally:
        stop(server)
    assert scored["result"] == [1]
    assert len(scored["probabilities"][0]) == 2 and scored["classes"] == [0, 1]


def test_serve_uses_a_projects_score_module_only_for_that_projects_model(workspace, tmp_path, monkeypatch):
    """`mlops serve` (cli/serve.py) in-process, the server call recorded: with breast_cancer_classification selected,
    its registered model is scored by its score module; a model of no project by the default scorer, never by the
    selected project's module."""
    import ml_service.serving.__main__ as serving_main
    from ml_service.cli import main
    from ml_service.serving.config import load_serving_settings
    from ml_service.workspace.tracking import connect
    from tests.support.registered import register_folder

    monkeypatch.setenv("MLOPS_MODEL", "breast_cancer_classification")
    selected = workspace.select("breast_cancer_classification").model
    default = load_serving_settings().score_module
    assert selected.score_module and selected.score_module != default
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "MLmodel").write_text("flavors: {}\n")
    seen = []
    monkeypatch.setattr(serving_main, "serve", lambda host, port, workers, settings: seen.append(settings))
    for name, module in ((selected.name, selected.score_module), ("no_project_model", default)):
        version = register_folder(connect(workspace), name, folder, selected.experiment)
        assert main(["serve", "--model", f"{name}:{version.version}", "--port", "1"]) == 0
        assert (seen[-1].model_name, seen[-1].score_module) == (name, module)
