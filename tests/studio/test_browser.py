"""The Studio in a real browser (Playwright driving Debian's chromium) against a real workspace: a git
repository whose release pipeline waits for approval on `production` (run by `mlops ci run`, no
Docker), a real MLflow sqlite store holding a champion and a candidate, `mlops studio` as a real
server on 127.0.0.1, users added with `mlops studio user add`."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.integration

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
XSS = "<script>window.__xss=1</script>"
MODEL = "studio_model"
APPROVER, OTHER_APPROVER, OUTSIDER = "alice@example.com", "carol@example.com", "bob@example.com"
RELEASER = "releaser@example.com"
PASSWORDS = {APPROVER: "alice-password-1", OTHER_APPROVER: "carol-password-1", OUTSIDER: "bob-password-1",
             RELEASER: "releaser-password-1"}
CANDIDATE, CHAMPION = 2871.3125, 3012.6875  # the metric (mse) of each on the same test split
# Every run keeps its screenshot with the test reports; MLOPS_UPDATE_SCREENSHOTS=1 also refreshes the README's.
SCREENSHOT = ROOT / ".mlops" / "test-results" / "approval.png"
README_SCREENSHOT = ROOT / "docs" / "images" / "approval.png"

CONFIG = f"""
workspace: {{state_dir: state}}
models:
  - {{project: {MODEL}, name: {MODEL}}}
environments:
  qa: {{}}
  production:
    approval:
      approvers: [{APPROVER}, {OTHER_APPROVER}, {RELEASER}]
      allow_self_approval: false
      timeout_minutes: 120
"""
RELEASE = """
trigger: none
pr: none
parameters:
  - name: model
    type: string
    default: ''
stages:
  - stage: QA
    displayName: QA
    jobs:
      - job: DeployQA
        displayName: Deploy and smoke test QA
        steps:
          - bash: |
              echo "deployed ${{ parameters.model }} to QA"
              echo "smoke test of QA: 2 predictions, HTTP 200" | tee "$(Agent.TempDirectory)/smoke.md"
              echo "##vso[task.uploadsummary]$(Agent.TempDirectory)/smoke.md"
            displayName: Smoke test QA
  - stage: Production
    displayName: Production
    dependsOn: QA
    jobs:
      - deployment: DeployProduction
        displayName: Deploy to production
        environment: production
        strategy:
          runOnce:
            deploy:
              steps:
                - bash: echo "deployed ${{ parameters.model }} to production"
                  displayName: Deploy to production
"""
PNG = bytes.fromhex("89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c4890000000d49444154789c63f8cfc0"
                    "f01f00050001ff89993d1d0000000049454e44ae426082")  # 1x1, red
TAIL = """
steps:
  - bash: |
      for i in $(seq 1 600); do
        echo "tick $i"
        [ -f "$GO_FILE" ] && break
        sleep 0.2
      done
      echo "told to finish"
    displayName: Count until told to finish
"""
REPORT = "<html><body><h1>Data validation passed</h1><p>22 of 22 expectations met</p></body></html>"


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", "-c", "user.email=dev@example.com", "-c", "user.name=dev", *args], cwd=cwd,
                          check=True, capture_output=True, text=True).stdout


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def project_env(project: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLOPS_")}
    return {**env, "MLOPS_ROOT": str(project), "MLFLOW_DISABLE_TELEMETRY": "true", "MLOPS_USER": RELEASER}


def mlops(project: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ml_service.cli", *args], cwd=ROOT, env=project_env(project),
                          input=stdin, capture_output=True, text=True, timeout=300)


def register_champion_and_candidate(project: Path) -> None:
    """A real MLflow sqlite store shaped as the ML pipeline leaves it: version 1 the earlier champion,
    version 2 a candidate whose pipeline run's evaluate step recorded both metrics on its test split
    and whose validate step published the data validation report."""
    from ml_service.config import load_settings
    from ml_service.workspace import tracking

    os.environ["MLOPS_ROOT"] = str(project)
    try:
        settings = load_settings()
    finally:
        del os.environ["MLOPS_ROOT"]
    client = tracking.connect(settings)
    experiment = tracking.ensure_experiment(client, settings)
    client.create_registered_model(MODEL)
    first_validate = ""
    for version, value, champion in ((1, CHAMPION, None), (2, CANDIDATE, CHAMPION)):
        parent = client.create_run(experiment, run_name="retrain", tags={
            "mlops.kind": "pipeline", "mlops.pipeline.name": "retrain", "mlops.model.name": MODEL,
            "mlops.outcome": f"registered {MODEL} version {version}", "mlflow.source.git.branch": "main"})
        parent_id = parent.info.run_id
        if not first_validate:  # version 2's pipeline reused this step (and its report)
            validate = client.create_run(experiment, run_name="validate", tags={
                "mlflow.parentRunId": parent_id, "mlops.step.name": "validate", "mlops.step.executed": "true"})
            first_validate = validate.info.run_id
            report = project / "report" / "data_validation.html"
            report.parent.mkdir()
            report.write_text(REPORT)
            client.log_artifact(first_validate, str(report), "outputs")
        else:
            validate = client.create_run(experiment, run_name="validate", tags={
                "mlflow.parentRunId": parent_id, "mlops.step.name": "validate",
                "mlops.step.reused_from": first_validate})
        outcome = (f"promoted: candidate mse {value:.4f} vs champion v1 {champion:.4f} on the same test split"
                   if champion else f"promoted: no champion yet; candidate mse {value:.4f}")
        evaluate = client.create_run(experiment, run_name="evaluate", tags={
            "mlflow.parentRunId": parent_id, "mlops.step.name": "evaluate", "mlops.step.executed": "true",
            "mlops.outcome": outcome})
        plot = project / f"plot{version}" / "residuals.png"
        plot.parent.mkdir()
        plot.write_bytes(PNG)
        client.log_artifact(evaluate.info.run_id, str(plot), "outputs")
        client.log_metric(evaluate.info.run_id, "candidate_mse", value)
        if champion:
            client.log_metric(evaluate.info.run_id, "champion_mse", champion)
        for run in (validate, evaluate, parent):
            client.set_terminated(run.info.run_id, "FINISHED")
        client.create_model_version(MODEL, f"{parent.info.artifact_uri}/model", run_id=evaluate.info.run_id,
                                    tags={"run_id": evaluate.info.run_id, "metric": "mse", "mse": repr(value),
                                          "pipeline_run_id": parent_id, "dataset_name": "studio_data",
                                          "git_commit": "0" * 40})
        client.set_registered_model_alias(MODEL, "champion", str(version))


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """The project, its two release runs waiting for approval (#1 release, #2 hotfix)."""
    project = tmp_path_factory.mktemp("studio-project")
    (project / "mlops.yml").write_text(CONFIG)
    (project / ".pipelines").mkdir()
    (project / ".pipelines" / "release.yml").write_text(RELEASE)
    (project / ".pipelines" / "hotfix.yml").write_text(RELEASE)
    (project / ".pipelines" / "tail.yml").write_text(TAIL)
    git(project, "init", "-q", "-b", "main")
    git(project, "add", ".")
    git(project, "commit", "-qm", "Release the candidate")
    register_champion_and_candidate(project)
    for pipeline in ("release", "hotfix"):
        if pipeline == "hotfix":  # a branch name and a commit message holding markup
            git(project, "checkout", "-q", "-b", XSS)
            git(project, "commit", "-q", "--allow-empty", "-m", f"{XSS} hotfix")
        started = mlops(project, "ci", "run", pipeline, "--param", f"model={MODEL}:2")
        assert "is waiting for approval of stage Production" in started.stdout, started.stdout + started.stderr
    for user, password in PASSWORDS.items():
        added = mlops(project, "studio", "user", "add", user, "--password-stdin", stdin=password + "\n")
        assert added.returncode == 0, added.stderr
    return project


@pytest.fixture(scope="module")
def studio(workspace):
    """`mlops studio` serving the workspace on 127.0.0.1; yields its base URL."""
    port = free_port()
    log = open(workspace / "studio.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "ml_service.cli", "studio", "--port", str(port)], cwd=ROOT,
                            env=project_env(workspace), stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(f"{url}/login", timeout=2)
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"the Studio did not start: {(workspace / 'studio.log').read_text()[-3000:]}")
            time.sleep(0.2)
    yield url
    proc.terminate()
    proc.wait(10)
    log.close()


@pytest.fixture(scope="module")
def browser():
    """Debian's chromium driven by Playwright; a missing chromium fails with the command that installs it."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: install it with `bash environment_setup/chromium.sh` "
                    "(apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def log_in(browser, studio: str, user: str, target: str = "/approvals"):
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    page.goto(f"{studio}{target}")
    page.get_by_label("User").fill(user)
    page.get_by_label("Password").fill(PASSWORDS[user])
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{studio}{target}")
    return page


def test_a_wrong_password_is_refused(browser, studio):
    page = browser.new_page()
    page.goto(f"{studio}/approvals")
    page.get_by_label("User").fill(APPROVER)
    page.get_by_label("Password").fill("not-her-password")
    page.get_by_role("button", name="Log in").click()
    page.get_by_role("alert").filter(has_text="wrong user or password").wait_for()
    assert page.url.startswith(f"{studio}/login")
    page.goto(f"{studio}/runs")
    assert page.url.startswith(f"{studio}/login?next=")


def test_a_user_not_among_the_approvers_is_refused(browser, studio):
    page = log_in(browser, studio, OUTSIDER)
    section = page.get_by_role("region", name="Run #1 release")
    section.get_by_role("button", name="Approve").click()
    refusal = page.get_by_role("alert")
    assert f"{OUTSIDER} is not an approver of environment production" in refusal.inner_text()
    page.goto(f"{studio}/runs/1")
    assert page.locator("#run-outcome").inner_text() == "waiting"
    assert page.locator("li.stage", has_text="Production").locator(".state").first.inner_text() == "waiting"


def test_an_approver_who_requested_the_run_may_not_approve_it(browser, studio):
    page = log_in(browser, studio, RELEASER)  # listed, but allow_self_approval is false
    page.get_by_role("region", name="Run #1 release").get_by_role("button", name="Approve").click()
    refusal = page.get_by_role("alert").inner_text()
    assert f"{RELEASER} requested run 1 and may not approve it (allow_self_approval is false)" in refusal
    page.goto(f"{studio}/runs/1")
    assert page.locator("#run-outcome").inner_text() == "waiting"


def test_markup_in_a_branch_name_and_a_commit_message_is_shown_as_text(browser, studio):
    page = log_in(browser, studio, APPROVER)
    for target in ("/approvals", "/runs/2", "/runs"):
        page.goto(f"{studio}{target}")
        assert XSS in page.locator("main").inner_text()  # visible as text: escaped, not parsed
        assert page.evaluate("window.__xss") is None  # and never executed
    page.goto(f"{studio}/runs/2")
    assert page.locator(".branch").inner_text() == XSS
    assert page.locator(".commit-message").inner_text() == f"{XSS} hotfix"


def test_an_approver_sees_both_metrics_approves_and_the_run_reaches_production(browser, studio):
    page = log_in(browser, studio, APPROVER)
    section = page.get_by_role("region", name="Run #1 release")
    assert section.locator(".run-id").inner_text() == "#1"
    assert section.locator(".candidate-metric").inner_text() == f"{CANDIDATE:.4f}"
    assert section.locator(".champion-metric").inner_text() == f"{CHAMPION:.4f}"
    assert "Succeeded" in section.inner_text() and "smoke test of QA: 2 predictions" in section.inner_text()
    report = page.frame_locator("section.approval >> nth=0 >> iframe.report")
    report.get_by_role("heading", name="Data validation passed").wait_for()
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    section.screenshot(path=str(SCREENSHOT))
    if os.environ.get("MLOPS_UPDATE_SCREENSHOTS") == "1":
        shutil.copyfile(SCREENSHOT, README_SCREENSHOT)

    section.get_by_label("Comment").fill("metrics and QA look right")
    section.get_by_role("button", name="Approve").click()
    page.wait_for_url(f"{studio}/runs/1")
    page.locator("#run-outcome").filter(has_text="succeeded").wait_for(timeout=120_000)  # resumed, reloaded
    production = page.locator("li.stage", has_text="Production")
    assert production.locator(".state").first.inner_text() == "Succeeded"
    assert f"approved by {APPROVER}: “metrics and QA look right”" in page.inner_text("body")
    step = page.locator("li.step", has_text="Deploy to production")
    step.locator("summary").click()
    step.locator("pre.log").filter(has_text=f"deployed {MODEL}:2 to production").wait_for()  # through SSE


def test_an_approver_rejects_another_run(browser, studio):
    page = log_in(browser, studio, OTHER_APPROVER)
    section = page.get_by_role("region", name="Run #2 hotfix")
    section.get_by_label("Comment").fill("not this week")
    section.get_by_role("button", name="Reject").click()
    page.wait_for_url(f"{studio}/runs/2")
    assert page.locator("#run-outcome").inner_text() == "rejected"
    assert f"rejected by {OTHER_APPROVER}: “not this week”" in page.inner_text("body")
    assert page.locator("li.stage", has_text="Production").locator(".state").first.inner_text() == "Failed"


def test_models_and_ml_runs_show_lineage_reuse_and_the_data_report(browser, studio):
    page = log_in(browser, studio, APPROVER, "/models")
    row = page.locator("tr", has=page.locator("td", has_text="@champion"))
    assert row.locator("td").first.inner_text() == "2"
    assert f"mse {CANDIDATE:.4f}" in row.inner_text() and "studio_data" in row.inner_text()
    row.locator("td a").first.click()  # its ML pipeline run
    page.wait_for_url(f"{studio}/ml/*")
    steps = page.locator("table").first
    assert "reused from" in steps.locator("tr", has_text="validate").inner_text()
    assert f"candidate_mse={CANDIDATE:.4f}" in steps.locator("tr", has_text="evaluate").inner_text()
    page.frame_locator("iframe.report").get_by_role("heading", name="Data validation passed").wait_for()
    plot = page.get_by_role("img", name="outputs/residuals.png")
    plot.wait_for()
    assert plot.evaluate("img => img.complete && img.naturalWidth") == 1  # served and decoded
    assert page.get_by_role("link", name="open in the MLflow UI").get_attribute("href").startswith(
        "http://127.0.0.1:5000/#/experiments/")


def test_a_running_steps_log_tails_live_and_the_page_follows_the_run_to_its_end(browser, studio, workspace):
    go = workspace / "go"
    env = {**project_env(workspace), "GO_FILE": str(go)}
    run = subprocess.Popen([sys.executable, "-m", "ml_service.cli", "ci", "run", "tail"], cwd=ROOT, env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        page = log_in(browser, studio, APPROVER, "/runs?pipeline=tail")
        link = page.get_by_role("link", name="#3")
        deadline = time.monotonic() + 120
        while not link.count():  # the run is queued by a process that may still be starting: look again
            assert time.monotonic() < deadline, "run #3 never appeared in the run list"
            page.wait_for_timeout(500)
            page.reload()
        link.click()
        page.wait_for_url(f"{studio}/runs/3")
        log = page.locator("li.step", has_text="Count until told to finish").locator("pre.log")
        log.filter(has_text="tick 2").wait_for(timeout=60_000)  # streamed while the step runs
        assert page.locator("#run-outcome").inner_text() == "running"
        seen = log.inner_text().count("tick")
        log.filter(has_text=f"tick {seen + 3}").wait_for()  # and it keeps coming, in the same page
        go.write_text("go")
        page.locator("#run-outcome").filter(has_text="succeeded").wait_for(timeout=60_000)
        assert run.wait(60) == 0
    finally:
        go.write_text("go")
        run.wait(60)
