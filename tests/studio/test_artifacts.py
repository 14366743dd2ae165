"""Issue 24, finding 2: what a pipeline step publishes cannot act in the Studio.

A step publishes `evil.js` (a CI artifact) and `evil.svg` / `evil.html` (an MLflow artifact, a CI artifact) whose
script reads the approvals page's CSRF token and POSTs an approval. An approver opens them in Debian's chromium,
logged in through `/login?next=...`: the runs must stay waiting. Plus the headers of each kind over HTTP
(in-process ASGI app, real run store and MLflow sqlite store)."""
from __future__ import annotations

import time

import pytest

from ml_service.ci.server.store import Store
from ml_service.studio.app import create_app
from tests.studio.test_browser import APPROVER, MODEL, PASSWORDS, browser, studio, workspace  # noqa: F401
from tests.studio.test_studio import Browser, project  # noqa: F401

pytestmark = pytest.mark.integration

APPROVE_ALL = """
fetch('/approvals').then(r => r.text()).then(page => {
  const token = page.match(/name="csrf" value="([^"]+)"/)[1];
  for (const run of [1, 2]) {
    fetch('/approvals/' + run, {method: 'POST', headers: {'Content-Type': 'application/x-www-form-urlencoded'},
      body: 'csrf=' + encodeURIComponent(token) + '&action=approve&stage=Production&comment=pwned'});
  }
});
"""
SVG = ('<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink">'
       '<script xlink:href="/runs/2/artifacts/evil.js"/>'
       f'<script>{APPROVE_ALL}</script><rect width="10" height="10"/></svg>')
HTML = f'<html><body><script src="/runs/2/artifacts/evil.js"></script><script>{APPROVE_ALL}</script></body></html>'


def publish(store: Store, settings, run_id: int) -> str:
    """evil.js and evil.html published by a CI run; evil.svg and evil.html logged to an MLflow run (its id)."""
    folder = store.artifacts_dir(run_id)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "evil.js").write_text(APPROVE_ALL)
    (folder / "evil.html").write_text(HTML)
    (folder / "evil.svg").write_text(SVG)
    from ml_service.workspace import tracking

    client = tracking.connect(settings)
    experiment = tracking.ensure_experiment(client, settings, "attacker")
    run = client.create_run(experiment)
    for name in ("evil.svg", "evil.html"):
        client.log_artifact(run.info.run_id, str(folder / name), "outputs")
    return run.info.run_id


def test_artifacts_download_under_a_sandbox_policy_and_only_inert_images_show_inline(project):  # noqa: F811
    store = Store(project.state_dir / "ci")
    ci_run = store.create_run("release", "r.yml", "Manual", "main", "", "dev", {}, "/nowhere")
    ml_run = publish(store, project, ci_run)
    png = store.artifacts_dir(ci_run) / "plot.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n")
    client = Browser(create_app(project))
    client.log_in("alice@example.com")
    for path in (f"/runs/{ci_run}/artifacts/evil.js", f"/runs/{ci_run}/artifacts/evil.html",
                 f"/runs/{ci_run}/artifacts/evil.svg", f"/ml/{ml_run}/artifact/outputs/evil.svg",
                 f"/ml/{ml_run}/artifact/outputs/evil.html"):
        status, headers, _ = client.request("GET", path)
        found = {k.lower(): v for k, v in headers}
        assert status == 200, path
        assert found["content-disposition"].startswith("attachment"), path
        assert found["content-type"] == "application/octet-stream", path
        assert found["content-security-policy"].startswith("sandbox;"), path
        assert found["x-content-type-options"] == "nosniff", path
    # a sandboxed frame may show the HTML report, an <img> the SVG: still under the sandbox policy
    for path, dest, kind in ((f"/ml/{ml_run}/artifact/outputs/evil.html", "iframe", "text/html"),
                             (f"/ml/{ml_run}/artifact/outputs/evil.svg", "image", "image/svg+xml")):
        status, headers, _ = client.request("GET", path, extra={"sec-fetch-dest": dest})
        found = {k.lower(): v for k, v in headers}
        assert found["content-type"].startswith(kind) and "content-disposition" not in found
        assert found["content-security-policy"].startswith("sandbox;")
    # a script tag cannot load an artifact as a script, nor can a page
    status, headers, _ = client.request("GET", f"/runs/{ci_run}/artifacts/evil.js", extra={"sec-fetch-dest": "script"})
    assert {k.lower(): v for k, v in headers}["content-type"] == "application/octet-stream"
    status, headers, _ = client.request("GET", f"/runs/{ci_run}/artifacts/plot.png")
    found = {k.lower(): v for k, v in headers}
    assert found["content-type"] == "image/png" and "content-disposition" not in found


def pending(workspace) -> list[int]:  # noqa: F811
    return sorted(a["run_id"] for a in Store(workspace / "state" / "ci").approvals(status="pending"))


def test_an_approver_opening_published_svg_html_and_js_approves_nothing(browser, studio, workspace):  # noqa
    from playwright.sync_api import Error

    from ml_service.config import load_settings

    settings = load_settings({"MLOPS_ROOT": str(workspace)})
    before = pending(workspace)
    assert before == [1, 2]
    ml_run = publish(Store(workspace / "state" / "ci"), settings, 2)
    page = browser.new_page()
    targets = [f"/ml/{ml_run}/artifact/outputs/evil.svg", f"/ml/{ml_run}/artifact/outputs/evil.html",
               "/runs/2/artifacts/evil.html", "/runs/2/artifacts/evil.svg", "/runs/2/artifacts/evil.js"]
    page.goto(f"{studio}/login?next={targets[0]}")  # the link an attacker sends: log in, then the artifact
    page.get_by_label("User").fill(APPROVER)
    page.get_by_label("Password").fill(PASSWORDS[APPROVER])
    try:
        with page.expect_download(timeout=10_000):
            page.get_by_role("button", name="Log in").click()
    except Error:
        pass  # shown instead of downloaded (before the fix): its script runs now
    for target in targets:
        try:
            page.goto(f"{studio}{target}", wait_until="load")
            page.wait_for_timeout(2000)  # time for a script that runs to do its work
        except Error:  # "Download is starting": it was not opened as a page
            pass
    deadline = time.monotonic() + 10  # what a script that ran would have done by now
    while time.monotonic() < deadline and pending(workspace) == before:
        time.sleep(0.5)
    assert pending(workspace) == before, "an artifact's script approved a run"
    page.goto(f"{studio}/runs/1")
    assert page.locator("#run-outcome").inner_text() == "waiting"
