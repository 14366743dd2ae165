"""Issue 24, finding 7 (the Studio's parts): one rule for user names (casefolded, as approver lists are), the
login limit's address not chosen by X-Forwarded-For (a real uvicorn server), no session row before login, a Host
check against DNS rebinding, and a version field of ASCII digits only. The ASGI app runs in-process over a real
run store and users file (tests/studio/test_studio.py's project); the address limit over real HTTP."""
from __future__ import annotations

import http.cookiejar
import re
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest

from ml_service.config import load_settings
from ml_service.studio import users
from ml_service.studio.app import create_app, studio_config
from tests.studio.test_studio import PASSWORD, Browser, project  # noqa: F401

pytestmark = pytest.mark.integration


def test_a_second_account_differing_only_by_case_is_refused_and_a_login_names_the_stored_user(project):  # noqa: F811
    state = project.state_dir
    for twin in ("ALICE@example.com", "ａｌｉｃｅ@example.com"):  # by case, or a full-width look-alike (NFKC)
        with pytest.raises(users.UserError):
            users.add_user(state, twin, "another password 1")
    assert users.list_users(state) == ["alice@example.com"]
    assert not users.verify(state, "ALICE@example.com", "another password 1")
    app = create_app(project)
    browser = Browser(app)
    status, _, _ = browser.log_in("Alice@Example.com")
    assert status == 303
    sessions = app.state.studio.sessions._sessions
    assert [s.user for s in sessions.values()] == ["alice@example.com"]


def test_anonymous_requests_store_no_session_and_a_login_stores_one(project):  # noqa: F811
    app = create_app(project)
    for _ in range(200):
        Browser(app).request("GET", "/login")  # a new client each time, as a flood is
        Browser(app).request("GET", "/runs")
    assert len(app.state.studio.sessions) == 0
    browser = Browser(app)
    assert browser.log_in("alice@example.com")[0] == 303
    assert len(app.state.studio.sessions) == 1
    assert browser.request("GET", "/runs")[0] == 200
    forged = Browser(app)
    forged.cookie = "anon.nonce.0000"
    assert forged.request("POST", "/login", {"csrf": "x", "user": "alice@example.com", "password": PASSWORD,
                                             "next": "/runs"})[0] == 403


def test_a_request_for_another_host_name_is_refused(project):  # noqa: F811
    app = create_app(project)
    for host in ("evil.example", "evil.example:8800", "127.0.0.1.nip.io:8800"):
        status, _, _ = Browser(app).request("GET", "/login", extra={"host": host})
        assert status == 400, host
    for host in ("127.0.0.1:8800", "localhost:8800", "[::1]:8800", "LOCALHOST"):
        assert Browser(app).request("GET", "/login", extra={"host": host})[0] == 200, host
    (project.root / "mlops.yml").write_text((project.root / "mlops.yml").read_text()
                                            + "studio:\n  hosts: [studio.example.com]\n")
    configured = create_app(load_settings())
    assert Browser(configured).request("GET", "/login", extra={"host": "studio.example.com"})[0] == 200
    assert Browser(configured).request("GET", "/login", extra={"host": "evil.example"})[0] == 400


@pytest.mark.parametrize("version", ["1\n", "\u0661", "1 ", "+1", "0x1", "1" * 12])
def test_the_qa_version_field_takes_ascii_digits_only(project, version):  # noqa: F811
    (project.root / "mlops.yml").write_text((project.root / "mlops.yml").read_text().replace(
        "environments:\n", "environments:\n  qa: {}\n"))
    browser = Browser(create_app(project))
    browser.log_in("alice@example.com")
    token = browser.csrf("/deployments")
    status, _, _ = browser.request("POST", "/deployments/qa", {"csrf": token, "model": "alpha_model",
                                                               "version": version})
    assert status == 400
    actions = project.state_dir / "studio" / "actions"
    assert not actions.exists() or not any(actions.iterdir())  # no deploy was started


def serve(app, options: dict):
    """The app on a real uvicorn server in a thread (the Studio's options); its URL and the server."""
    import uvicorn

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", **options))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    return f"http://127.0.0.1:{port}", server, thread


def test_the_address_limit_counts_the_connection_not_a_forwarded_for_header(project):  # noqa: F811
    from ml_service.studio.app import server_options

    app = create_app(project)
    url, server, thread = serve(app, server_options(studio_config(project)))
    try:
        jar = http.cookiejar.CookieJar()
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
        page = opener.open(f"{url}/login").read().decode()
        token = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
        statuses = []
        for attempt in range(22):  # a new user name each time: only the address limit (20) can stop this
            form = urllib.parse.urlencode({"csrf": token, "user": f"guess{attempt}", "password": "wrong-password",
                                           "next": "/"}).encode()
            request = urllib.request.Request(f"{url}/login", data=form,
                                             headers={"X-Forwarded-For": f"10.0.0.{attempt}"})
            try:
                statuses.append(opener.open(request).status)
            except urllib.error.HTTPError as exc:
                statuses.append(exc.code)
        assert statuses[:20] == [401] * 20 and statuses[20:] == [429, 429]
    finally:
        server.should_exit = True
        thread.join(10)


def test_forwarded_for_is_believed_only_from_configured_proxies(project):  # noqa: F811
    from ml_service.studio.app import server_options

    assert server_options(studio_config(project)) == {"proxy_headers": False, "forwarded_allow_ips": "127.0.0.1"}
    (project.root / "mlops.yml").write_text((project.root / "mlops.yml").read_text()
                                            + "studio:\n  trusted_proxies: [10.1.2.3]\n")
    assert server_options(studio_config(load_settings())) == {"proxy_headers": True, "forwarded_allow_ips": "10.1.2.3"}
