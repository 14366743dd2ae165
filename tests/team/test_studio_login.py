"""In team mode the team server's users are the Studio's users (issue 24): a real team workspace (`mlops workspace
up`: PostgreSQL 15 and MLflow's server with basic auth), the Studio served over real HTTP by uvicorn in this process
(so its session store can be read), its checkout pointed at the server as the admin.

- a server user logs in with the server's password (under any spelling of the name) and approves as an approver;
- a wrong password, an unknown name and an account of the Studio's own users.json open nothing;
- a user deleted on the server cannot log in any more, and the session it had open ends;
- a CI personal token names a server user, as the server spells it (none for a name the server does not have);
- with the server stopped, a login is refused with 503 and opens nothing, while a session already open stays
  (the server cannot say its user is gone) (this test stops the server: it runs last).
"""
from __future__ import annotations

import base64
import http.client
import json
import logging
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from urllib.parse import urlencode

import pytest

from ml_service.config import load_settings
from tests.conftest import ROOT
from tests.team.test_workspace import run_mlops, start_team

pytestmark = [pytest.mark.integration, pytest.mark.slow]
COOKIE = "mlops_studio"
LOCAL_PASSWORD = "correct horse battery"


class Records(logging.Handler):
    """Every log record's text, of every logger (the password must be in none)."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.texts: list[str] = []

    def emit(self, record):
        self.texts.append(self.format(record))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def add_user(team, name: str) -> str:
    """A server user made by `mlops workspace user add`; its password."""
    added = run_mlops(team["env"], "workspace", "user", "add", name)
    assert added.returncode == 0, added.stderr
    return (team["state_dir"] / "secrets" / "users" / name).read_text().strip()


@pytest.fixture(scope="module")
def team(tmp_path_factory):
    """A team workspace with a user `carol`, a project whose production approvers are [carol] using it, and the
    Studio of that project on 127.0.0.1 (uvicorn in a thread)."""
    import uvicorn

    from ml_service.studio.app import create_app

    state_dir = tmp_path_factory.mktemp("team-studio")
    env = start_team(state_dir)
    team = {"env": env, "state_dir": state_dir}
    team["carol"] = add_user(team, "carol")
    root = tmp_path_factory.mktemp("studio-project")
    (root / "mlops.yml").write_text("models:\n  - {project: alpha, name: alpha_model}\nenvironments:\n"
                                    "  production:\n    approval: {approvers: [carol, frida]}\n")
    settings = load_settings({**env, "MLOPS_ROOT": str(root)})
    assert settings.tracking_uri.startswith("http://") and settings.tracking_username == "admin"
    records = Records()
    logging.getLogger().addHandler(records)
    app = create_app(settings, recheck_seconds=0)  # a session's user is looked up on the server at every request
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="info"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the Studio did not start"
        time.sleep(0.1)
    team.update(settings=settings, app=app, port=port, records=records, root=root)
    yield team
    server.should_exit = True
    thread.join(30)
    logging.getLogger().removeHandler(records)
    run_mlops(env, "workspace", "down")


class Client:
    """One browser over real HTTP: keeps the session cookie, follows no redirect."""

    def __init__(self, port: int):
        self.port, self.cookie = port, ""

    def request(self, method: str, path: str, form: dict | None = None) -> tuple[int, dict, str]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        headers = {"Cookie": f"{COOKIE}={self.cookie}"} if self.cookie else {}
        body = None
        if form is not None:
            body = urlencode(form)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        connection.request(method, path, body, headers)
        response = connection.getresponse()
        text = response.read().decode(errors="replace")
        found = re.search(rf"{COOKIE}=([^;]*)", response.getheader("set-cookie") or "")
        if found:
            self.cookie = found.group(1)
        connection.close()
        return response.status, dict(response.getheaders()), text

    def csrf(self, path: str = "/login") -> str:
        return re.search(r'name="csrf" value="([^"]+)"', self.request("GET", path)[2]).group(1)

    def log_in(self, user: str, password: str) -> int:
        """POST /login from the login page; the status."""
        form = {"csrf": self.csrf(), "user": user, "password": password, "next": "/runs"}
        return self.request("POST", "/login", form)[0]

    def opens(self, path: str = "/runs") -> bool:
        """True when the page opens; False when it sends the browser to /login."""
        status, headers, _ = self.request("GET", path)
        assert status in (200, 303), status
        return status == 200 and not headers.get("location", "").startswith("/login")


def delete_user(team, name: str) -> None:
    """Delete a server user through MLflow's own REST API, as the admin."""
    admin = team["settings"]
    token = base64.b64encode(f"{admin.tracking_username}:{admin.tracking_password}".encode()).decode()
    delete = urllib.request.Request(f"{admin.tracking_uri}/api/2.0/mlflow/users/delete", method="DELETE",
                                    data=json.dumps({"username": name}).encode(),
                                    headers={"Authorization": f"Basic {token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(delete, timeout=30) as response:
        assert response.status == 200


def waiting_release(team) -> int:
    """A run of the local CI store waiting for the production approval."""
    from ml_service.ci.server.store import Store

    store = Store(team["settings"].state_dir / "ci")
    run_id = store.create_run("release", "release.yml", "Manual", "main", "a" * 40, "dev@example.com", {},
                              str(team["root"]))
    store.request_approval(run_id, "Production", "Deploy", "production", 3600)
    store.update_run(run_id, status="waiting")
    return run_id


def sessions(team) -> dict:
    """The Studio's stored sessions: id -> user."""
    return {s.id: s.user for s in team["app"].state.studio.sessions._sessions.values()}


def test_a_server_user_logs_in_with_the_servers_password_and_approves_as_an_approver(team):
    from ml_service.ci.server.store import Store

    carol = Client(team["port"])
    assert not carol.opens()
    assert carol.log_in("Carol", team["carol"]) == 303  # the platform's rule for names: the server's carol
    assert carol.opens()
    assert sessions(team)[carol.cookie] == "carol"  # the name as the server spells it, and nothing else
    stored = vars(team["app"].state.studio.sessions._sessions[carol.cookie])
    assert team["carol"] not in repr(stored)
    store = Store(team["settings"].state_dir / "ci")
    run_id = store.create_run("release", "release.yml", "Manual", "main", "a" * 40, "dev@example.com", {},
                              str(team["root"]))
    store.request_approval(run_id, "Production", "Deploy", "production", 3600)
    store.update_run(run_id, status="waiting")
    form = {"csrf": carol.csrf("/approvals"), "action": "approve", "comment": "ok"}
    status, headers, _ = carol.request("POST", f"/approvals/{run_id}", form)
    assert status == 303 and headers["location"] == f"/runs/{run_id}"
    [decided] = store.approvals(run_id)
    assert (decided["status"], decided["approver"]) == ("approved", "carol")
    assert not any(team["carol"] in text for text in team["records"].texts)


def test_a_wrong_password_an_unknown_name_and_a_studio_users_account_open_nothing(team):
    from ml_service.studio import users

    users.add_user(team["settings"].state_dir, "erin@example.com", LOCAL_PASSWORD)  # the Studio's own store
    before = sessions(team)
    for user, password in (("carol", team["carol"] + "x"), ("nobody", team["carol"]),
                           ("erin@example.com", LOCAL_PASSWORD)):
        client = Client(team["port"])
        assert client.log_in(user, password) == 401, user
        assert not client.opens(), user
    assert sessions(team) == before
    users_json = users.users_file(team["settings"].state_dir)
    kept = users_json.read_bytes()
    added = subprocess.run([sys.executable, "-m", "ml_service.cli", "studio", "user", "add", "frank@example.com",
                            "--password-stdin"], input=LOCAL_PASSWORD + "\n", capture_output=True, text=True,
                           cwd=ROOT, env={**team["env"], "MLOPS_ROOT": str(team["root"])}, timeout=120)
    assert added.returncode == 2 and "Traceback" not in added.stderr
    assert users_json.read_bytes() == kept  # in team mode the Studio's own store is not written


def test_a_user_deleted_on_the_server_cannot_log_in_any_more_and_loses_the_open_session(team):
    password = add_user(team, "dave")
    dave = Client(team["port"])
    assert dave.log_in("dave", password) == 303 and dave.opens()
    opened = dave.cookie
    delete_user(team, "dave")
    assert not dave.opens() and opened not in sessions(team)  # the session opened before the deletion ends
    before = sessions(team)
    again = Client(team["port"])
    assert again.log_in("dave", password) == 401
    assert not again.opens() and sessions(team) == before


def test_a_ci_token_names_a_server_user_as_the_server_spells_it(team):
    from ml_service.ci.server import identity

    def create(name: str) -> subprocess.CompletedProcess:
        env = {**team["env"], "MLOPS_ROOT": str(team["root"])}
        return subprocess.run([sys.executable, "-m", "ml_service.cli", "ci", "token", "create", "--name", name],
                              capture_output=True, text=True, cwd=ROOT, env=env, timeout=120)

    made = create("CAROL")
    assert made.returncode == 0, made.stderr
    refused = create("nobody")
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert [t["name"] for t in identity.list_tokens(team["settings"])] == ["carol"]


def test_the_ci_token_of_a_user_deleted_on_the_server_decides_no_approval(team):
    from ml_service.ci.server.store import Store

    env = {**team["env"], "MLOPS_ROOT": str(team["root"])}
    add_user(team, "frida")
    made = subprocess.run([sys.executable, "-m", "ml_service.cli", "ci", "token", "create", "--name", "frida"],
                          capture_output=True, text=True, cwd=ROOT, env=env, timeout=120)
    assert made.returncode == 0, made.stderr
    token = re.search(r"mlops_[\w-]+", made.stdout).group(0)

    def approve(run_id: int) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "ml_service.cli", "ci", "approve", str(run_id)],
                              capture_output=True, text=True, cwd=ROOT, env={**env, "MLOPS_TOKEN": token}, timeout=120)

    store = Store(team["settings"].state_dir / "ci")
    before, after = waiting_release(team), waiting_release(team)
    decided = approve(before)  # while frida is a server user, her token proves her: an approver (the run's file
    assert "Traceback" not in decided.stderr  # is not there to resume, which the CLI reports after the decision)
    assert [(a["status"], a["approver"]) for a in store.approvals(before)] == [("approved", "frida")]
    delete_user(team, "frida")
    refused = approve(after)
    assert refused.returncode != 0 and "Traceback" not in refused.stderr
    assert [a["status"] for a in store.approvals(after)] == ["pending"]  # the token proves nothing now
    assert store.get_run(after).status == "waiting"


def change_password(team, name: str, old: str, new: str) -> None:
    """The user changes their own password through MLflow's own REST API (e.g. after it leaked)."""
    token = base64.b64encode(f"{name}:{old}".encode()).decode()
    body = {"username": name, "password": new, "current_password": old}
    update = urllib.request.Request(f"{team['settings'].tracking_uri}/api/2.0/mlflow/users/update-password",
                                    method="PATCH", data=json.dumps(body).encode(),
                                    headers={"Authorization": f"Basic {token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(update, timeout=30) as response:
        assert response.status == 200


def test_a_password_changed_on_the_server_ends_the_sessions_opened_with_the_old_one(team):
    """Known left before (docs/security.md): the session survived a password change until logout or 12 idle hours."""
    password = add_user(team, "erin")
    erin = Client(team["port"])
    assert erin.log_in("erin", password) == 303 and erin.opens()
    opened = erin.cookie
    change_password(team, "erin", password, "a-new-password-4711")
    assert not erin.opens() and opened not in sessions(team)
    again = Client(team["port"])
    assert again.log_in("erin", "a-new-password-4711") == 303 and again.opens()  # the new password opens one


def test_only_an_admin_reads_a_users_password_stamp(team):
    password = add_user(team, "fred")
    token = base64.b64encode(f"fred:{password}".encode()).decode()
    asked = urllib.request.Request(f"{team['settings'].tracking_uri}/api/2.0/mlops/users/password-stamp"
                                   "?username=admin", headers={"Authorization": f"Basic {token}"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(asked, timeout=30)
    assert refused.value.code == 403


def test_with_the_server_stopped_a_login_is_refused_and_opens_nothing(team):
    carol = Client(team["port"])
    assert carol.log_in("carol", team["carol"]) == 303
    opened = carol.cookie
    stopped = run_mlops(team["env"], "workspace", "down")
    assert stopped.returncode == 0, stopped.stderr
    before = sessions(team)
    again = Client(team["port"])
    form = {"csrf": again.csrf(), "user": "carol", "password": team["carol"], "next": "/runs"}
    status, _, page = again.request("POST", "/login", form)
    assert status == 503 and "Traceback" not in page
    assert not again.opens() and sessions(team) == before
    assert carol.opens("/runs") and opened in sessions(team)  # a page of the local run store
