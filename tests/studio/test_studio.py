"""The Studio's rules without a browser: password hashing, sessions, CSRF on every POST, the login
redirect, the trusted proxy header, escaping, run helpers and the live log stream, driven through the
real ASGI app against a real run store in a temp dir."""
from __future__ import annotations

import asyncio
import os
import re
import stat
import subprocess
import sys
import threading
from urllib.parse import urlencode

import pytest

from ml_service.ci.server.store import Store
from ml_service.config import load_settings
from ml_service.studio import runs, users
from ml_service.studio.app import create_app
from ml_service.studio.auth import COOKIE, safe_next
from tests.conftest import ROOT

PASSWORD = "correct horse battery"


def call(app, method, path, body=b"", headers=None, query="", on_body=None):
    """One request through the ASGI app; returns (status, headers as a list of pairs, body). on_body(chunk) is
    called with each body chunk as the app sends it (to act on what a streaming client has seen)."""
    sent = []
    messages = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive():
        if messages:
            return messages.pop(0)
        await asyncio.sleep(3600)  # a client that stays connected

    async def send(message):
        sent.append(message)
        if on_body is not None and message["type"] == "http.response.body":
            on_body(message.get("body", b""))

    scope = {"type": "http", "method": method, "path": path, "query_string": query.encode(), "scheme": "http",
             "headers": [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()],
             "server": ("127.0.0.1", 8800), "client": ("127.0.0.1", 5000), "root_path": "", "http_version": "1.1"}
    try:
        asyncio.run(asyncio.wait_for(app(scope, receive, send), 30))
    except Exception:  # re-raised for the server's log once the error page went out, as Starlette does
        if not sent:
            raise
    start = next(m for m in sent if m["type"] == "http.response.start")
    response_headers = [(k.decode(), v.decode()) for k, v in start["headers"]]
    payload = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], response_headers, payload.decode(errors="replace")


def header(headers, name):
    return [v for k, v in headers if k == name]


class Browser:
    """Keeps the session cookie between requests, as a browser does."""

    def __init__(self, app):
        self.app, self.cookie = app, ""

    def request(self, method, path, form=None, query="", extra=None, on_body=None):
        headers = dict(extra or {})
        if self.cookie:
            headers["cookie"] = f"{COOKIE}={self.cookie}"
        body = b""
        if form is not None:
            body = urlencode(form).encode()
            headers["content-type"] = "application/x-www-form-urlencoded"
        status, response_headers, text = call(self.app, method, path, body, headers, query, on_body)
        for value in header(response_headers, "set-cookie"):
            found = re.match(rf"{COOKIE}=([^;]*)", value)
            if found:
                self.cookie = found.group(1)
        return status, response_headers, text

    def csrf(self, path="/login"):
        return re.search(r'name="csrf" value="([^"]+)"', self.request("GET", path)[2]).group(1)

    def log_in(self, user, password=PASSWORD):
        return self.request("POST", "/login", {"csrf": self.csrf(), "user": user, "password": password,
                                               "next": "/runs"})


@pytest.fixture
def project(tmp_path, monkeypatch):
    (tmp_path / "mlops.yml").write_text("models:\n  - {project: alpha, name: alpha_model}\nenvironments:\n"
                                        "  production:\n    approval: {approvers: [alice@example.com]}\n")
    monkeypatch.setenv("MLOPS_ROOT", str(tmp_path))
    monkeypatch.setenv("MLOPS_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.delenv("MLOPS_MODEL", raising=False)
    settings = load_settings()
    users.add_user(settings.state_dir, "alice@example.com", PASSWORD)
    return settings


def test_passwords_are_stored_salted_and_hashed_and_checked(project):
    state = project.state_dir
    users.add_user(state, "bob@example.com", PASSWORD)  # the same password as alice
    path = users.users_file(state)
    text = path.read_text()
    assert PASSWORD not in text
    entries = users._read(path)
    assert entries["alice@example.com"]["salt"] != entries["bob@example.com"]["salt"]
    assert entries["alice@example.com"]["hash"] != entries["bob@example.com"]["hash"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert users.verify(state, "bob@example.com", PASSWORD)
    assert not users.verify(state, "bob@example.com", PASSWORD + "x")
    assert not users.verify(state, "nobody@example.com", PASSWORD)
    users.remove_user(state, "bob@example.com")
    assert users.list_users(state) == ["alice@example.com"]


@pytest.mark.parametrize("name, password, message", [
    ("carol", "short", "at least 8 characters"),
    ("carol smith", PASSWORD, "no spaces"),
    ("", PASSWORD, "1 to 200 characters"),
])
def test_bad_users_are_refused_with_the_reason(project, name, password, message):
    with pytest.raises(users.UserError, match=message):
        users.add_user(project.state_dir, name, password)


def test_user_add_reads_the_password_from_stdin_only(project):
    env = {**os.environ, "MLOPS_ROOT": str(project.root), "MLOPS_STATE_DIR": str(project.state_dir)}

    def mlops(*args, stdin=""):
        return subprocess.run([sys.executable, "-m", "ml_service.cli", "studio", "user", *args], input=stdin,
                              capture_output=True, text=True, env=env, cwd=ROOT, timeout=60)

    without = mlops("add", "carol@example.com")
    assert without.returncode == 2 and "--password-stdin" in without.stderr and "Traceback" not in without.stderr
    short = mlops("add", "carol@example.com", "--password-stdin", stdin="short\n")
    assert short.returncode == 2 and "at least 8 characters" in short.stderr
    added = mlops("add", "carol@example.com", "--password-stdin", stdin=f"{PASSWORD}\n")
    assert added.returncode == 0, added.stderr
    assert users.verify(project.state_dir, "carol@example.com", PASSWORD)
    assert "carol@example.com" in mlops("list").stdout


def test_every_page_needs_a_login_and_login_rotates_the_session(project):
    browser = Browser(create_app(project))
    status, headers, _ = browser.request("GET", "/runs", query="result=failed")
    assert status == 303 and header(headers, "location") == ["/login?next=/runs%3Fresult%3Dfailed"]
    anonymous = browser.cookie
    status, _, page = browser.log_in("alice@example.com", "wrong password!")
    assert status == 401 and "wrong user or password" in page
    status, headers, _ = browser.log_in("alice@example.com")
    assert status == 303 and header(headers, "location") == ["/runs"]
    cookie = header(headers, "set-cookie")[0]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie
    assert browser.cookie != anonymous  # a new session id after login
    assert browser.request("GET", "/runs")[0] == 200
    policy = header(browser.request("GET", "/runs")[1], "content-security-policy")[0]
    assert "script-src 'self'" in policy


def test_every_post_needs_the_sessions_csrf_token(project):
    app = create_app(project)
    browser = Browser(app)
    browser.log_in("alice@example.com")
    posts = [r.path.replace("{run:int}", "1") for r in app.routes if "POST" in (getattr(r, "methods", None) or ())]
    assert {"/login", "/logout", "/approvals/1", "/deployments/qa"} <= set(posts)
    for path in posts:
        for form in ({}, {"csrf": "forged"}):
            status, _, page = browser.request("POST", path, {**form, "action": "approve", "user": "x"})
            assert status == 403 and "CSRF token" in page, path
    other = Browser(app)
    token = other.csrf()  # another session's token is no good either
    assert browser.request("POST", "/logout", {"csrf": token})[0] == 403


def test_next_after_login_stays_on_the_studio():
    assert safe_next("/runs/3?x=1") == "/runs/3?x=1"
    for target in ("//evil.example", "https://evil.example/", "/\\evil.example", "", None):
        assert safe_next(target) == "/"


def test_a_trusted_proxy_header_names_the_user(project):
    (project.root / "mlops.yml").write_text((project.root / "mlops.yml").read_text()
                                            + "studio: {trusted_header: X-Forwarded-User}\n")
    app = create_app(load_settings())  # the settings read after the change
    assert call(app, "GET", "/runs")[0] == 401
    status, _, page = call(app, "GET", "/runs", headers={"x-forwarded-user": "proxy-user@example.com"})
    assert status == 200 and "proxy-user@example.com" in page
    (project.root / "mlops.yml").write_text("models: []\nstudio: {trusted_header: [a]}\n")
    with pytest.raises(Exception, match="studio.trusted_header: must be an HTTP header name"):
        create_app(load_settings())


def session_user(app, cookie):
    """Who the server-side session of a cookie belongs to; None when the server holds no such session."""
    session = app.state.studio.sessions.get(cookie)
    return None if session is None else session.user


def with_cookie(app, cookie):
    """A second browser holding a copy of a cookie (what an attacker who kept it has)."""
    other = Browser(app)
    other.cookie = cookie
    return other


def test_logout_ends_the_session_on_the_server_so_the_old_cookie_opens_nothing(project):
    """Issue 29: POST /logout once deleted only the cookie; whoever kept it still opened every page."""
    app = create_app(project)
    browser = Browser(app)
    browser.log_in("alice@example.com")
    cookie = browser.cookie
    assert with_cookie(app, cookie).request("GET", "/runs")[0] == 200  # the control: the cookie opens pages
    status, headers, _ = browser.request("POST", "/logout", {"csrf": browser.csrf("/runs")})
    assert status == 303 and header(headers, "location") == ["/login"]
    assert session_user(app, cookie) is None  # the session is gone on the server
    status, headers, _ = with_cookie(app, cookie).request("GET", "/runs")
    assert status == 303 and header(headers, "location")[0].startswith("/login?next=")


def test_a_login_never_keeps_the_session_id_it_came_with(project):
    """Session fixation: an id planted in a victim's browser before login must not become a logged-in session."""
    app = create_app(project)
    browser = Browser(app)
    browser.request("GET", "/login")
    planted = browser.cookie
    assert planted and session_user(app, planted) == ""  # an anonymous session, for the login form's CSRF token
    status, _, _ = browser.log_in("alice@example.com")
    assert status == 303 and browser.cookie != planted
    assert session_user(app, browser.cookie) == "alice@example.com"
    assert session_user(app, planted) == ""  # the anonymous session (stored nowhere) was not promoted
    assert with_cookie(app, planted).request("GET", "/runs")[0] == 303


def test_a_session_expires_after_twelve_idle_hours_and_not_before(project, monkeypatch):
    from ml_service.studio import auth

    app = create_app(project)
    browser = Browser(app)
    browser.log_in("alice@example.com")
    session = app.state.studio.sessions.get(browser.cookie)
    now = 1_000_000.0
    monkeypatch.setattr(auth.time, "time", lambda: now)
    session.seen = now - 12 * 3600  # twelve hours idle, exactly the limit: still alive
    assert browser.request("GET", "/runs")[0] == 200 and session.seen == now  # a request renews it
    session.seen = now - 12 * 3600 - 1  # one second more: expired and dropped
    assert browser.request("GET", "/runs")[0] == 303
    assert app.state.studio.sessions._sessions.get(session.id) is None


def trusted(project):
    """The Studio behind a reverse proxy that names the user in X-Forwarded-User."""
    (project.root / "mlops.yml").write_text((project.root / "mlops.yml").read_text()
                                            + "studio: {trusted_header: X-Forwarded-User}\n")
    return create_app(load_settings())


def test_the_trusted_header_wins_over_a_session_cookie_of_another_user(project):
    """Issue 29: a proxy header ignored once a session exists. The proxy authenticates every request: when its
    header names someone else than the cookie's session, the header is who is there (a new session for them)."""
    app = trusted(project)
    browser = Browser(app)
    assert browser.request("GET", "/runs", extra={"x-forwarded-user": "alice@example.com"})[0] == 200
    alice = browser.cookie
    assert session_user(app, alice) == "alice@example.com"
    status, _, _ = browser.request("GET", "/runs", extra={"x-forwarded-user": "bob@example.com"})
    assert status == 200 and browser.cookie != alice  # a new session, for the header's user
    assert session_user(app, browser.cookie) == "bob@example.com"
    assert session_user(app, alice) == "alice@example.com"  # the other session is not rewritten


def test_the_same_user_behind_the_proxy_keeps_the_session_and_no_header_is_refused_even_with_a_cookie(project):
    app = trusted(project)
    browser = Browser(app)
    browser.request("GET", "/runs", extra={"x-forwarded-user": "alice@example.com"})
    alice = browser.cookie
    status, headers, _ = browser.request("GET", "/runs", extra={"x-forwarded-user": "alice@example.com"})
    assert status == 200 and not header(headers, "set-cookie") and browser.cookie == alice  # the same session
    status, _, _ = browser.request("GET", "/runs")  # the session cookie alone, no header: refused
    assert status == 401
    assert browser.request("GET", "/runs", extra={"x-forwarded-user": "  "})[0] == 401  # a blank name is none


def post_login(app, content_type, size=None):
    """POST /login as alice with the right password from a fresh browser, the form padded to `size` bytes."""
    browser = Browser(app)
    body = urlencode({"csrf": browser.csrf(), "user": "alice@example.com", "password": PASSWORD, "next": "/runs"})
    if size is not None:
        body += "&pad=" + "x" * (size - len(body) - len("&pad="))
        assert len(body) == size
    headers = {"cookie": f"{COOKIE}={browser.cookie}", "content-type": content_type}
    return call(app, "POST", "/login", body.encode(), headers)


def test_a_form_with_a_charset_parameter_is_read_and_other_types_are_refused(project):
    app = create_app(project)
    for content_type in ("application/x-www-form-urlencoded; charset=UTF-8",
                         "application/x-www-form-urlencoded ;charset=utf-8"):
        status, headers, _ = post_login(app, content_type)
        assert status == 303 and header(headers, "location") == ["/runs"], content_type
    for content_type in ("application/json", "multipart/form-data; boundary=x", "", "text/plain; "
                         "x=application/x-www-form-urlencoded"):
        status, headers, _ = post_login(app, content_type)
        assert status == 415 and not header(headers, "set-cookie"), content_type


def test_a_form_of_exactly_the_limit_is_read_and_one_byte_more_is_refused(project):
    from ml_service.studio.auth import FORM_LIMIT

    app = create_app(project)
    form = "application/x-www-form-urlencoded"
    assert post_login(app, form, FORM_LIMIT)[0] == 303
    status, headers, page = post_login(app, form, FORM_LIMIT + 1)
    assert status == 413 and not header(headers, "set-cookie")


def test_a_password_of_exactly_the_minimum_length_is_accepted_and_one_shorter_refused(project):
    exact = "p" * users.MIN_PASSWORD
    assert users.add_user(project.state_dir, "dave@example.com", exact) is True
    assert users.verify(project.state_dir, "dave@example.com", exact)
    with pytest.raises(users.UserError, match="at least"):
        users.add_user(project.state_dir, "erin@example.com", exact[:-1])
    assert "erin@example.com" not in users.list_users(project.state_dir)
    long_name = "n" * users.MAX_NAME
    assert users.check_name(long_name) == long_name
    with pytest.raises(users.UserError):
        users.check_name(long_name + "n")


def test_a_user_hashed_with_other_scrypt_parameters_is_checked_with_that_users_own(project):
    """A users.json written with other work factors (an earlier release's, or a tuned one) keeps working: each
    entry's own parameters win over today's defaults, for the right password and against a wrong one."""
    state = project.state_dir
    own = {"n": 2 ** 12, "r": 4, "p": 2}
    assert own != users.SCRYPT
    salt = os.urandom(16)
    data = users._read(users.users_file(state))
    data["old@example.com"] = {"salt": salt.hex(), "hash": users._hash(PASSWORD, salt, own).hex(), "scrypt": own}
    users._write(users.users_file(state), data)
    assert users.verify(state, "old@example.com", PASSWORD)
    assert not users.verify(state, "old@example.com", PASSWORD + "x")
    assert users.verify(state, "alice@example.com", PASSWORD)  # today's parameters, stored with the entry too


def test_the_users_file_stays_0600_when_it_is_rewritten(project):
    path = users.users_file(project.state_dir)
    path.chmod(0o644)  # loosened by hand
    users.add_user(project.state_dir, "frank@example.com", PASSWORD)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert not list(path.parent.glob(".users.json.*"))  # the temporary file was renamed over it


def pending_approval(project):
    """A release run waiting for approval of environment production (approvers: alice)."""
    store = Store(project.state_dir / "ci")
    run_id = store.create_run("release", "release.yml", "Manual", "main", "a" * 40, "dev@example.com", {},
                              str(project.root))
    store.request_approval(run_id, "Production", "Deploy", "production", 3600)
    store.update_run(run_id, status="waiting")
    return store, run_id


def test_only_an_approver_decides_and_never_by_a_name_in_the_form(project, tmp_path):
    import dataclasses

    from tests.conftest import fresh_store

    users.add_user(project.state_dir, "bob@example.com", PASSWORD)
    store, run_id = pending_approval(project)
    app = create_app(dataclasses.replace(project, tracking_uri=fresh_store(tmp_path / "mlflow.db")))
    bob = Browser(app)
    bob.log_in("bob@example.com")
    for action in ("approve", "reject"):
        form = {"csrf": bob.csrf("/runs"), "action": action, "user": "alice@example.com",
                "approver": "alice@example.com"}
        status, _, _ = bob.request("POST", f"/approvals/{run_id}", form)
        assert status == 403, action
    [waiting] = store.approvals(run_id)
    assert waiting["status"] == "pending" and store.get_run(run_id).status == "waiting"
    alice = Browser(app)
    alice.log_in("alice@example.com")
    form = {"csrf": alice.csrf("/runs"), "action": "reject", "comment": "no"}
    status, headers, _ = alice.request("POST", f"/approvals/{run_id}", form)
    assert status == 303 and header(headers, "location") == [f"/runs/{run_id}"]
    [decided] = store.approvals(run_id)
    assert (decided["status"], decided["approver"]) == ("rejected", "alice@example.com")
    assert store.get_run(run_id).result == "rejected"


def queue_run(store, branch="main", result="succeeded", reason="Manual", pipeline="build", triggered_by=0):
    run_id = store.create_run(pipeline, f"{pipeline}.yml", reason, branch, "a" * 40, "dev@example.com", {}, "/nowhere",
                              triggered_by=triggered_by)
    store.update_run(run_id, status="completed", result=result, started=1.0, finished=3.0)
    return run_id


def test_runs_are_filtered_paged_and_escaped(project):
    store = Store(project.state_dir / "ci")
    for i in range(60):
        queue_run(store, branch="main" if i % 2 else "<b>feature</b>", result="failed" if i % 3 == 0 else "succeeded")
    listing = runs.filtered(store, {"branch": "main", "result": "failed"})
    assert listing.total == 10 and all(r.branch == "main" and r.result == "failed" for r in listing.runs)
    assert runs.filtered(store, {}).pages == 2 and len(runs.filtered(store, {}, page=2).runs) == 10
    browser = Browser(create_app(project))
    browser.log_in("alice@example.com")
    page = browser.request("GET", "/runs", query="branch=%3Cb%3Efeature%3C%2Fb%3E")[2]
    assert "&lt;b&gt;feature&lt;/b&gt;" in page and "<b>feature</b>" not in page
    assert "30 run(s)" in page


def test_run_tree_tests_coverage_artifacts_and_chain(project):
    store = Store(project.state_dir / "ci")
    build = queue_run(store, pipeline="build")
    retrain = queue_run(store, pipeline="retrain", reason="ResourceTrigger", triggered_by=build)
    release = queue_run(store, pipeline="release", reason="ResourceTrigger", triggered_by=retrain)
    store.set_record(retrain, "Train", "stage", name="Train", status="completed", result="Succeeded",
                     started=1.0, finished=4.0)
    store.set_record(retrain, "Train/Job", "job", name="Job", status="completed", result="Succeeded")
    store.set_record(retrain, "Train/Job/00", "step", name="test", display="Run tests", status="completed",
                     result="Succeeded")
    results = store.test_results_dir(retrain)
    results.mkdir(parents=True)
    (results / "TEST-unit.xml").write_text(
        '<testsuites><testsuite name="unit" tests="2"><testcase classname="t" name="ok" time="0.5"/>'
        '<testcase classname="t" name="bad"><failure message="boom: 1 != 2"/></testcase></testsuite></testsuites>')
    store.coverage_dir(retrain).mkdir(parents=True)
    (store.coverage_dir(retrain) / "coverage.xml").write_text('<coverage line-rate="0.875"/>')
    tree = runs.tree(store.records(retrain))
    assert [n.record["path"] for n in tree] == ["Train"] and tree[0].seconds == 3.0
    assert tree[0].children[0].children[0].record["display"] == "Run tests"
    cases = runs.test_results(store, retrain)
    assert [(c.name, c.outcome) for c in cases] == [("t::ok", "passed"), ("t::bad", "failed")]
    assert runs.coverage(store, retrain) == [("coverage.xml", 0.875)]
    (store.artifacts_dir(retrain) / "drop").mkdir(parents=True)
    (store.artifacts_dir(retrain) / "drop" / "model.bin").write_bytes(b"model")
    assert runs.artifact_file(store, retrain, "drop/model.bin") is not None
    assert runs.artifact_file(store, retrain, "../../runs.db") is None
    upstream, downstream = runs.chain(store, store.get_run(retrain))
    assert [r.id for r in upstream] == [build] and [r.id for r in downstream] == [release]
    browser = Browser(create_app(project))
    browser.log_in("alice@example.com")
    page = browser.request("GET", f"/runs/{retrain}")[2]
    assert "Tests: 2 run, 1 failed" in page and "87.5%" in page and "boom: 1 != 2" in page
    assert f'href="/runs/{build}"' in page and f'href="/runs/{release}"' in page
    assert browser.request("GET", f"/runs/{retrain}/artifacts/..%2F..%2Fruns.db")[0] == 404
    assert browser.request("GET", "/runs/999")[0] == 404


def test_a_running_steps_log_streams_until_the_step_ends(project):
    store = Store(project.state_dir / "ci")
    run_id = store.create_run("build", "build.yml", "Manual", "main", "a" * 40, "dev", {}, "/nowhere")
    log = store.log_path(run_id, "S.J.00")
    log.write_text("first line\n")
    store.set_record(run_id, "S/J/00", "step", name="step", status="running", log=str(log))
    browser = Browser(create_app(project))
    browser.log_in("alice@example.com")

    streamed, first_sent, second_sent = [], threading.Event(), threading.Event()

    def on_body(chunk):  # what the client has received so far: the events the writer waits for
        streamed.append(chunk)
        seen = b"".join(streamed)
        if b"first line" in seen:
            first_sent.set()
        if b"second line" in seen:  # a complete line; "third" has no newline yet
            second_sent.set()

    def finish():
        assert first_sent.wait(30), "the stream never sent the first line"  # it sent what was there, waits
        with open(log, "a") as handle:
            handle.write("second line\nthird")
        assert second_sent.wait(30), "the stream never sent the appended line"
        store.set_record(run_id, "S/J/00", "step", status="completed", result="Succeeded")

    writer = threading.Thread(target=finish)
    writer.start()
    status, headers, body = browser.request("GET", f"/runs/{run_id}/log/S/J/00", on_body=on_body)
    writer.join()
    assert status == 200 and header(headers, "content-type")[0].startswith("text/event-stream")
    events = re.findall(r"event: (\w+)\n((?:data: .*\n)+)", body)
    lines = [line[len("data: "):] for name, data in events if name == "log" for line in data.splitlines()]
    assert lines == ["first line", "second line", "third"]
    assert events[-1] == ("end", "data: Succeeded\n")


def test_a_page_whose_store_is_broken_says_so_without_a_traceback(project):
    browser = Browser(create_app(project))
    browser.log_in("alice@example.com")
    assert browser.request("GET", "/runs")[0] == 200
    (project.state_dir / "ci" / "runs.db").write_bytes(b"this is not a database" * 100)
    for suffix in ("-wal", "-shm"):
        (project.state_dir / "ci" / f"runs.db{suffix}").unlink(missing_ok=True)
    status, _, page = browser.request("GET", "/runs")
    assert status == 500 and "this page failed: DatabaseError" in page and "Traceback" not in page


def test_mlops_studio_refuses_a_port_in_use_in_one_line(project):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {**os.environ, "MLOPS_ROOT": str(project.root), "MLOPS_STATE_DIR": str(project.state_dir)}
        result = subprocess.run([sys.executable, "-m", "ml_service.cli", "studio", "--port", str(port)], env=env,
                                cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip() == (f"error: cannot listen on 127.0.0.1:{port} (Address already in use): "
                                     "choose another --port or --host")


def test_a_release_names_its_version_by_parameter_output_or_the_retrain_runs_artifact(project):
    import json

    from ml_service.studio.evidence import release_ref

    store = Store(project.state_dir / "ci")
    retrain = queue_run(store, pipeline="retrain")
    (store.artifacts_dir(retrain) / "model").mkdir(parents=True)
    (store.artifacts_dir(retrain) / "model" / "model.json").write_text(json.dumps({"name": "m", "version": "7"}))
    by_artifact = store.create_run("release", "r.yml", "ResourceTrigger", "main", "", "dev", {}, "/nowhere",
                                   {"retrain": {"runID": retrain}})
    assert release_ref(store, store.get_run(by_artifact)) == "m:7"
    store.update_run(by_artifact, state={"outputs": {"Model/Select.model.ref": "m:8"}})
    assert release_ref(store, store.get_run(by_artifact)) == "m:8"  # what the run itself selected wins
    by_parameter = store.create_run("release", "r.yml", "Manual", "main", "", "dev", {"model": "m:9"}, "/nowhere")
    assert release_ref(store, store.get_run(by_parameter)) == "m:9"
    unknown = store.create_run("release", "r.yml", "Manual", "main", "", "dev", {}, "/nowhere")
    assert release_ref(store, store.get_run(unknown)) == ""


@pytest.mark.parametrize("model, version", [("alpha_model", "1a"), ("alpha_model", ""), ("alpha_model", "1 --x"),
                                            ("alpha_model", "-1"), ("other_model", "1")])
def test_a_qa_action_runs_only_a_model_of_mlops_yml_and_a_version_number(project, model, version):
    browser = Browser(create_app(project))
    browser.log_in("alice@example.com")
    form = {"csrf": browser.csrf("/runs"), "model": model, "version": version, "action": "rollback"}
    assert browser.request("POST", "/deployments/qa", form)[0] == 400
    assert not (project.state_dir / "studio" / "actions").exists()  # no `mlops deploy qa` was started


def test_a_carriage_return_in_a_steps_output_cannot_end_the_live_log_stream(project):
    """EventSource ends a line at CR as at LF: a step printing CR + `event: end` would close every viewer's tail
    while the step goes on (what it prints next is then never seen live)."""
    store = Store(project.state_dir / "ci")
    run_id = store.create_run("build", "build.yml", "Manual", "main", "a" * 40, "dev", {}, "/nowhere")
    log = store.log_path(run_id, "S.J.00")
    log.write_bytes(b"build ok\revent: end\rdata: Succeeded\r\rafter the forged end\n")
    store.set_record(run_id, "S/J/00", "step", name="step", status="completed", result="Failed", log=str(log))
    browser = Browser(create_app(project))
    browser.log_in("alice@example.com")
    status, _, body = browser.request("GET", f"/runs/{run_id}/log/S/J/00")
    assert status == 200
    events, name, data = [], "message", []
    for line in re.split(r"\r\n|\r|\n", body):  # the stream as the browser parses it (the SSE spec)
        if line == "":
            if data:
                events.append((name, "\n".join(data)))
            name, data = "message", []
        elif line.startswith("event: "):
            name = line[len("event: "):]
        elif line.startswith("data: "):
            data.append(line[len("data: "):])
    assert [n for n, _ in events].count("end") == 1 and events[-1] == ("end", "Failed")
    assert any("after the forged end" in d for n, d in events if n == "log")


def test_a_step_output_without_newlines_is_streamed_in_bounded_pieces(project):
    """A progress bar (or a hostile step) writing megabytes without a newline: the stream must not hold the whole
    line in memory (nor copy it again at every read); every event carries a bounded piece."""
    store = Store(project.state_dir / "ci")
    run_id = store.create_run("build", "build.yml", "Manual", "main", "a" * 40, "dev", {}, "/nowhere")
    log = store.log_path(run_id, "S.J.00")
    log.write_bytes(b"x" * (4 * 1024 * 1024))
    store.set_record(run_id, "S/J/00", "step", name="step", status="completed", result="Succeeded", log=str(log))
    browser = Browser(create_app(project))
    browser.log_in("alice@example.com")
    status, _, body = browser.request("GET", f"/runs/{run_id}/log/S/J/00")
    assert status == 200
    pieces = re.findall(r"data: (x+)\n", body)
    assert sum(map(len, pieces)) == 4 * 1024 * 1024  # all of it, in order
    assert max(map(len, pieces)) <= 2 * 64 * 1024  # at most a chunk kept plus a chunk read
