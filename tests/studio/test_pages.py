"""Studio pages over real records: deployments with live health from a real HTTP server and a QA
action that really runs `mlops deploy qa`, and an approval past its timeout; the ASGI app is driven
in-process against a real run store and a real MLflow sqlite store in a temp dir."""
from __future__ import annotations

import http.server
import threading
import time

import pytest

from ml_service.ci.server.store import Store
from ml_service.config import load_settings
from ml_service.studio import users
from ml_service.studio.app import create_app
from tests.studio.test_studio import PASSWORD, Browser

pytestmark = pytest.mark.integration
MODEL = "studio_pages_model"


class Ready(http.server.BaseHTTPRequestHandler):
    """A scoring service's readiness endpoint, nothing else."""

    def do_GET(self):  # noqa: N802 - the http.server API
        self.send_response(200 if self.path == "/v2/health/ready" else 404)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def project(tmp_path, monkeypatch):
    (tmp_path / "mlops.yml").write_text(f"models:\n  - {{project: {MODEL}, name: {MODEL}}}\nenvironments:\n"
                                        "  qa: {}\n  production:\n    approval: {approvers: [alice@example.com]}\n")
    for key in ("MLOPS_MODEL", "MLOPS_TRACKING_URI", "MLOPS_MODEL_NAME", "MLOPS_EXPERIMENT", "MLOPS_USER"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("MLOPS_ROOT", str(tmp_path))
    monkeypatch.setenv("MLOPS_STATE_DIR", str(tmp_path / "state"))
    settings = load_settings()
    users.add_user(settings.state_dir, "alice@example.com", PASSWORD)
    return settings


def test_deployments_and_models_show_health_history_where_live_and_run_a_qa_rollback(project):
    from ml_service.deploy import records

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Ready)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        records.record(project, "qa", MODEL, "1", f"mlops/{MODEL}:1", url, records.LIVE, "external")
        records.record(project, "qa", MODEL, "2", f"mlops/{MODEL}:2", url, records.LIVE, "external")
        records.record(project, "production", MODEL, "1", f"mlops/{MODEL}:1", "", records.DESIRED, "gitops")
        browser = Browser(create_app(project))
        browser.log_in("alice@example.com")
        status, _, page = browser.request("GET", "/deployments")
    finally:
        server.shutdown()
    assert status == 200
    qa = page.split('id="env-2"')[1].split("</section>")[0]  # environments sorted: production, qa
    assert "<td>2</td>" in qa and "<td>ready</td>" in qa and url in qa
    assert "Roll back to v1" in qa and "Redeploy v2" in qa
    assert page.count(">replaced<") == 1 and "desired" in page.split('id="env-1"')[1].split("</section>")[0]

    token = browser.csrf("/deployments")
    refused = browser.request("POST", "/deployments/qa", {"csrf": token, "model": "other", "version": "1"})
    assert refused[0] == 400 and "not a model of mlops.yml" in refused[2]
    status, headers, _ = browser.request("POST", "/deployments/qa", {"csrf": token, "model": MODEL, "version": "1",
                                                                     "action": "rollback"})
    assert status == 303
    logs = project.state_dir / "studio" / "actions"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # the real `mlops deploy qa` ends: this version is not registered
        text = "".join(p.read_text() for p in logs.glob("*.log"))
        if "[failed: exit code" in text:
            break
        time.sleep(0.3)
    assert f"rollback by alice@example.com: mlops deploy qa --model {MODEL}:1" in text
    assert f"cannot find model '{MODEL}:1'" in text and "[failed: exit code 1]" in text
    assert "cannot find model" in browser.request("GET", "/deployments")[2]

    from ml_service.workspace import tracking

    client = tracking.connect(project)
    client.create_registered_model(MODEL)
    for version in ("1", "2"):
        client.create_model_version(MODEL, f"file:///nowhere/{version}", tags={"metric": "mse", "mse": "1.5"})
    models = browser.request("GET", "/models")[2]
    rows = {row.split("</td>")[0]: row for row in models.split("<tr>\n    <td>")[1:]}
    assert "<td>qa</td>" in rows["2"] and "<td>production (desired state)</td>" in rows["1"]


def test_the_ml_run_page_shows_each_step_as_ran_failed_or_running(project):
    from ml_service.workspace import tracking

    client = tracking.connect(project)
    experiment = client.create_experiment("studio_pages_steps")
    parent = client.create_run(experiment, tags={"mlops.kind": "pipeline", "mlops.pipeline.name": "training"})
    parent_id = parent.info.run_id
    for start, name, status in ((1000, "prepare", "FINISHED"), (2000, "train", "FAILED"), (3000, "evaluate", "")):
        child = client.create_run(experiment, start_time=start, tags={"mlflow.parentRunId": parent_id,
                                                                      "mlops.step.name": name})
        if status:
            client.set_terminated(child.info.run_id, status)
    browser = Browser(create_app(project))
    browser.log_in("alice@example.com")
    status, _, page = browser.request("GET", f"/ml/{parent_id}")
    assert status == 200
    rows = page.split("<tbody>")[1].split("</tbody>")[0].split("<tr>")[1:]
    shown = [(row.split("<td>")[1].split("</td>")[0], row.split('<span class="state ')[1].split('"')[0])
             for row in rows]
    assert shown == [("prepare", "ran"), ("train", "failed"), ("evaluate", "running")]


def test_an_approval_past_its_timeout_is_rejected_when_the_studio_looks(project):
    store = Store(project.state_dir / "ci")
    run_id = store.create_run("release", "release.yml", "Manual", "main", "a" * 40, "dev", {}, str(project.root))
    store.request_approval(run_id, "Production", "Deploy", "production", -1)
    store.update_run(run_id, status="waiting")
    browser = Browser(create_app(project))
    browser.log_in("alice@example.com")
    page = browser.request("GET", "/approvals")[2]
    assert "Nothing waits for approval." in page and "timed out" in page
    assert store.get_run(run_id).result == "rejected"
    token = browser.csrf("/approvals")
    status, _, page = browser.request("POST", f"/approvals/{run_id}", {"csrf": token, "action": "approve"})
    assert status == 403 and f"run {run_id} has no pending approval" in page


def test_mlops_studio_starts_the_mlflow_ui_beside_it_links_there_and_stops_it(project):
    import http.cookiejar
    import os
    import re
    import socket
    import subprocess
    import sys
    import urllib.parse
    import urllib.request

    from tests.conftest import ROOT

    ports = []
    for _ in range(2):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            ports.append(s.getsockname()[1])
    studio_port, mlflow_port = ports
    env = {**os.environ, "MLOPS_ROOT": str(project.root), "MLOPS_STATE_DIR": str(project.state_dir)}
    server = subprocess.Popen([sys.executable, "-m", "ml_service.cli", "studio", "--port", str(studio_port),
                               "--mlflow-ui", "--mlflow-port", str(mlflow_port)], cwd=ROOT, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))

    def answers(url):
        try:
            with opener.open(url, timeout=5) as response:
                return response.read().decode()
        except OSError:
            return None

    try:
        deadline = time.monotonic() + 300  # MLflow's server takes 50 s to start on a loaded 2-core machine
        while not (answers(f"http://127.0.0.1:{studio_port}/login") and
                   answers(f"http://127.0.0.1:{mlflow_port}/health")):
            assert server.poll() is None and time.monotonic() < deadline, "the Studio or the MLflow UI did not start"
            time.sleep(0.5)
        login = answers(f"http://127.0.0.1:{studio_port}/login")
        token = re.search(r'name="csrf" value="([^"]+)"', login).group(1)
        form = urllib.parse.urlencode({"csrf": token, "user": "alice@example.com", "password": PASSWORD,
                                       "next": "/runs"}).encode()
        page = opener.open(f"http://127.0.0.1:{studio_port}/login", data=form, timeout=30).read().decode()
        assert f'<a href="http://127.0.0.1:{mlflow_port}" rel="noopener">MLflow UI</a>' in page
    finally:
        server.terminate()
        server.wait(30)
    deadline = time.monotonic() + 30
    while answers(f"http://127.0.0.1:{mlflow_port}/health") is not None:  # stopped with the Studio
        assert time.monotonic() < deadline, "the MLflow UI outlived the Studio"
        time.sleep(0.3)


def test_a_qa_rollback_offers_the_models_own_last_replaced_version_never_a_failed_one_or_another_models(project):
    """The rollback button of a model in QA: its own newest replaced version, not a newer failed deploy (it never
    served), nor another model's replaced version (newer still)."""
    import re

    from ml_service.deploy import records

    url = "http://127.0.0.1:1"  # nothing answers: health is shown as down, the buttons stay
    for version in ("1", "2"):
        records.record(project, "qa", MODEL, version, f"mlops/{MODEL}:{version}", url, records.LIVE, "external")
    records.record(project, "qa", MODEL, "3", f"mlops/{MODEL}:3", url, records.FAILED, "external")
    for version in ("5", "6"):
        records.record(project, "qa", "other_model", version, f"mlops/other:{version}", url, records.LIVE,
                       "external")
    browser = Browser(create_app(project))
    browser.log_in("alice@example.com")
    status, _, page = browser.request("GET", "/deployments")
    assert status == 200
    offered = dict(re.findall(r'name="model" value="([^"]+)">\s*<input type="hidden" name="version" value="(\d+)">\s*'
                              r'<button type="submit" name="action" value="rollback">', page))
    assert offered == {MODEL: "1", "other_model": "5"}
