"""Team-mode logins without a team server (tests/team/test_studio_login.py has the real one): a checkout pointed at
an MLflow server as a user logs in to the Studio against that server only; when nothing answers there, a login is
refused (503), opens nothing, stores no session and counts no failure; the Studio's own users are not managed; a
Studio with its own users asks the MLflow server nothing about them."""
from __future__ import annotations

import dataclasses
import http.server
import json
import os
import socket
import subprocess
import sys
import threading

from ml_service.studio import users
from ml_service.studio.app import create_app
from tests.conftest import ROOT
from tests.studio import test_studio
from tests.studio.test_studio import PASSWORD, Browser

project = test_studio.project  # alice@example.com is a Studio user with PASSWORD


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def team_mode(project):
    """The project's settings pointed at a team server (nothing answers there) as the user admin."""
    return dataclasses.replace(project, tracking_uri=f"http://127.0.0.1:{closed_port()}", tracking_username="admin",
                               tracking_password="the checkout's password")


def test_with_no_server_answering_a_login_is_refused_opens_nothing_and_counts_no_failure(project):
    app = create_app(team_mode(project))
    limit = project.studio.login_max_failures
    for _ in range(limit + 1):  # more than the limit: none of them counted as a wrong password
        browser = Browser(app)
        status, _, page = browser.log_in("alice@example.com", PASSWORD)  # a Studio user: not asked in team mode
        assert status == 503 and "Traceback" not in page
        assert browser.request("GET", "/runs")[0] == 303  # back to /login
    assert len(app.state.studio.sessions) == 0
    assert len(app.state.login_limits.users) == 0 and len(app.state.login_limits.addresses) == 0


def test_the_studios_own_users_are_not_managed_in_team_mode(project):
    settings = team_mode(project)
    env = {**os.environ, "MLOPS_ROOT": str(project.root), "MLOPS_STATE_DIR": str(project.state_dir),
           "MLOPS_TRACKING_URI": settings.tracking_uri, "MLFLOW_TRACKING_USERNAME": "admin",
           "MLFLOW_TRACKING_PASSWORD": settings.tracking_password}
    kept = users.users_file(project.state_dir).read_bytes()
    for args, stdin in ((["add", "bob@example.com", "--password-stdin"], PASSWORD + "\n"), (["list"], "")):
        done = subprocess.run([sys.executable, "-m", "ml_service.cli", "studio", "user", *args], input=stdin,
                              capture_output=True, text=True, env=env, cwd=ROOT, timeout=60)
        assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
        assert "alice@example.com" not in done.stdout  # list shows no users that cannot log in
    assert users.users_file(project.state_dir).read_bytes() == kept


class Listing(http.server.BaseHTTPRequestHandler):
    """An MLflow server that answers every GET with an empty user list, and keeps the paths it was asked."""

    asked: list[str] = []

    def do_GET(self):  # noqa: N802 - the http.server API
        self.asked.append(self.path)
        body = json.dumps({"users": []}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_a_studio_with_its_own_users_never_asks_the_mlflow_server_about_them(project):
    Listing.asked = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Listing)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:  # an MLflow server without a user in the checkout: the Studio's own users log in, never the server's
        settings = dataclasses.replace(project, tracking_uri=f"http://127.0.0.1:{server.server_address[1]}")
        browser = Browser(create_app(settings, recheck_seconds=0))
        assert browser.log_in("alice@example.com", PASSWORD)[0] == 303
        for _ in range(3):  # each past the recheck interval: a server's (empty) user list would end the session
            assert browser.request("GET", "/runs")[0] == 200
    finally:
        server.shutdown()
        server.server_close()
    assert Listing.asked == []
