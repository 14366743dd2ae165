"""Promises of the local CI engine that no test kept (issue 19), asserted on effects: what is in every store,
who may decide, what a command changed. Pipelines run for real (bash steps); the CLI runs in-process."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from ml_service.ci import service
from ml_service.cli import main
from ml_service.config import load_settings

FIXTURES = Path(__file__).parent / "fixtures"
RUNTIME_SECRET = "runtime-secret-123"
GROUP_SECRET = "group-secret-456"
MLOPS_YML = """
models:
  - {project: p, name: m}
environments:
  production:
    approval: {approvers: [lead@example.com], timeout_minutes: 60}
ci:
  variable_groups:
    vault:
      variables: {REGION: local-region}
      secrets: [GROUP_SECRET]
"""
MASKED = """
variables:
  - group: vault
steps:
  - bash: |
      echo "##vso[task.setvariable variable=token;issecret=true]runtime-secret-123"
      mkdir -p results && echo '<testsuite tests="2" failures="1"/>' > results/TEST-one.xml
    displayName: setup
  - task: PublishTestResults@2
    displayName: title with secrets
    inputs:
      testResultsFiles: results/TEST-*.xml
      testRunTitle: run $(token) and $(GROUP_SECRET)
  - task: PublishTestResults@2
    displayName: failing task
    continueOnError: 'true'
    inputs:
      testResultsFiles: results/TEST-*.xml
      testRunTitle: fail $(token)
      failTaskOnFailedTests: 'true'
  - bash: echo "##vso[task.logissue type=warning]the issue names $(token) and $(GROUP_SECRET)"
    displayName: issue
"""


@pytest.fixture
def project(tmp_path, monkeypatch):
    (tmp_path / "mlops.yml").write_text(MLOPS_YML)
    monkeypatch.setenv("MLOPS_ROOT", str(tmp_path))
    monkeypatch.setenv("MLOPS_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("MLOPS_USER", "dev@example.com")
    monkeypatch.setenv("GROUP_SECRET", GROUP_SECRET)
    monkeypatch.delenv("MLOPS_MODEL", raising=False)
    return load_settings()


def run_text(settings, text: str, name: str = "pipeline.yml"):
    path = settings.root / name
    path.write_text(text)
    store = service.open_store(settings)
    run_id = service.queue(settings, store, path, "Manual", {})
    service.execute(settings, store, run_id)
    return store, store.get_run(run_id)


def every_stored_byte(state_dir: Path) -> str:
    """Every file the engine wrote (run database, logs, artifacts, state), as text."""
    return "".join(p.read_bytes().decode(errors="replace") for p in state_dir.rglob("*") if p.is_file())


def test_task_output_and_step_details_never_hold_a_secret(project):
    store, run = run_text(project, MASKED)
    records = {r["display"]: r for r in store.records(run.id)}
    assert records["title with secrets"]["result"] == "Succeeded"
    assert records["failing task"]["result"] == "SucceededWithIssues"  # failed, continueOnError
    assert "***" in records["failing task"]["detail"] and "published test results 'fail ***'" in \
        records["failing task"]["detail"]
    assert "***" in records["issue"]["detail"]
    logs = {name: Path(r["log"]).read_text() for name, r in records.items() if r["log"]}
    assert "published test results 'run *** and ***'" in logs["title with secrets"]  # the task's output, masked
    stored = every_stored_byte(project.state_dir) + repr(store.records(run.id)) + repr(run.state)
    for secret in (RUNTIME_SECRET, GROUP_SECRET):
        assert secret not in stored


def test_publish_test_results_fails_the_task_only_when_asked(project):
    base = ("steps:\n  - bash: mkdir -p r && echo '<testsuites><testsuite tests=\"3\" failures=\"1\" errors=\"1\"/>"
            "</testsuites>' > r/TEST-a.xml\n  - task: PublishTestResults@2\n    displayName: publish\n"
            "    inputs: {testResultsFiles: r/TEST-*.xml%s}\n")
    store, lenient = run_text(project, base % "")
    assert lenient.result == "succeeded"
    assert (store.artifacts_dir(lenient.id) / "test-results" / "TEST-a.xml").is_file()  # published either way
    store, strict = run_text(project, base % ", failTaskOnFailedTests: 'true'")
    record = next(r for r in store.records(strict.id) if r["display"] == "publish")
    assert strict.result == "failed" and record["result"] == "Failed" and "3 tests, 2 failed" in record["detail"]
    store, quoted_false = run_text(project, base % ", failTaskOnFailedTests: 'false'")
    assert quoted_false.result == "succeeded"


def test_publish_code_coverage_copies_the_report_and_a_missing_one_fails(project):
    text = ("steps:\n  - bash: echo '<coverage line-rate=\"0.875\"/>' > cov.xml\n"
            "  - task: PublishCodeCoverageResults@2\n    displayName: cov\n    inputs: {summaryFileLocation: %s}\n")
    store, good = run_text(project, text % "cov.xml")
    assert good.result == "succeeded" and (store.artifacts_dir(good.id) / "coverage" / "cov.xml").is_file()
    log = Path(next(r for r in store.records(good.id) if r["display"] == "cov")["log"]).read_text()
    assert "87.5% of lines" in log
    store, missing = run_text(project, text % "nowhere.xml")
    assert missing.result == "failed"


def test_variable_groups_read_secrets_from_dotenv_and_the_environment_wins(project, monkeypatch):
    monkeypatch.delenv("GROUP_SECRET")
    (project.root / ".env").write_text("# local secrets\nexport GROUP_SECRET='from-dotenv-789'\n")
    text = ("variables:\n  - group: vault\nsteps:\n  - bash: |\n      echo \"length ${#S} region $(REGION)\"\n"
            "      [ \"$S\" = from-dotenv-789 ] && echo 'came from .env'\n      echo \"value $S\"\n"
            "    env: {S: $(GROUP_SECRET)}\n    displayName: uses\n")
    store, run = run_text(project, text)
    log = Path(next(r for r in store.records(run.id) if r["display"] == "uses")["log"]).read_text()
    assert run.result == "succeeded" and "length 15 region local-region" in log and "came from .env" in log
    assert "value ***" in log and "from-dotenv-789" not in every_stored_byte(project.state_dir)
    monkeypatch.setenv("GROUP_SECRET", "from-environment")
    store, run = run_text(project, text)
    log = Path(next(r for r in store.records(run.id) if r["display"] == "uses")["log"]).read_text()
    assert "length 16" in log and "came from .env" not in log


def waiting_run(project):
    store, run = run_text(project, (FIXTURES / "approval.yml").read_text(), "approval.yml")
    assert run.status == "waiting"
    return store, run


def test_someone_who_is_not_an_approver_cannot_reject(project, capsys):
    store, run = waiting_run(project)
    assert main(["ci", "reject", str(run.id), "--comment", "no"]) != 0
    assert "dev@example.com is not an approver" in capsys.readouterr().err
    assert store.get_run(run.id).status == "waiting"
    assert [a["status"] for a in store.approvals(run.id)] == ["pending"]
    with pytest.raises(service.CIError, match="not an approver"):
        service.decide(project, store, run.id, False, "no", approver="intruder@example.com")
    assert store.get_run(run.id).status == "waiting"


def test_an_approver_rejects_and_the_run_ends_rejected(project, capsys, monkeypatch):
    from ml_service.ci.identity import create_token

    store, run = waiting_run(project)
    monkeypatch.setenv("MLOPS_TOKEN", create_token(project, "Lead@Example.com")[1])  # proof; names compare without case
    assert main(["ci", "reject", str(run.id), "--comment", "not today"]) == 0
    assert f"run {run.id}: stage Deploy rejected by Lead@Example.com (token)" in capsys.readouterr().out
    done = store.get_run(run.id)
    assert (done.status, done.result) == ("completed", "rejected")
    assert [(a["status"], a["comment"]) for a in store.approvals(run.id)] == [("rejected", "not today")]
    records = {r["display"]: r for r in store.records(run.id)}
    assert "shipping version" not in "".join(Path(r["log"]).read_text() for r in records.values() if r["log"])


def test_pending_lists_what_waits_with_the_command_and_approve_resumes_it(project, capsys, monkeypatch):
    assert main(["ci", "pending"]) == 0 and "nothing waits for approval" in capsys.readouterr().out
    store, run = waiting_run(project)
    assert main(["ci", "pending"]) == 0
    out = capsys.readouterr().out
    assert f"run {run.id} (approval) stage Deploy -> environment production" in out
    assert f"mlops ci approve {run.id}" in out and "requested by dev@example.com" in out
    from ml_service.ci.identity import create_token

    monkeypatch.setenv("MLOPS_USER", "lead@example.com")
    assert main(["ci", "approve", str(run.id), "--comment", "ship"]) != 0  # a claimed name is no proof
    monkeypatch.setenv("MLOPS_TOKEN", create_token(project, "lead@example.com")[1])
    assert main(["ci", "approve", str(run.id), "--comment", "ship"]) == 0
    assert store.get_run(run.id).result == "succeeded"
    logs = "".join(Path(r["log"]).read_text() for r in store.records(run.id) if r["log"])
    assert "shipping version 7" in logs
    assert main(["ci", "pending"]) == 0 and "nothing waits" in capsys.readouterr().out


def test_identity_falls_back_to_git_user_email(project, monkeypatch, capsys):
    subprocess.run(["git", "init", "-q", str(project.root)], check=True)
    subprocess.run(["git", "-C", str(project.root), "config", "user.email", "lead@example.com"], check=True)
    monkeypatch.delenv("MLOPS_USER")
    settings = load_settings()
    assert service.identity(settings) == "lead@example.com"
    store, run = run_text(settings, (FIXTURES / "approval.yml").read_text(), "approval.yml")
    assert store.get_run(run.id).requested_by == "lead@example.com"  # the name given when queueing
    assert main(["ci", "approve", str(run.id), "--comment", "by git identity"]) != 0  # a claim, not proof
    assert store.approvals(run.id)[0]["status"] == "pending"
    monkeypatch.setenv("MLOPS_USER", "someone@example.com")  # MLOPS_USER wins over git
    assert service.identity(load_settings()) == "someone@example.com"


def test_rerun_queues_the_same_pipeline_with_the_same_parameters(project, capsys):
    text = ("parameters:\n  - {name: who, type: string, default: nobody}\nsteps:\n"
            "  - bash: echo \"hello ${{ parameters.who }} $(Build.BuildId)\"\n    displayName: hello\n")
    path = project.root / "hello.yml"
    path.write_text(text)
    store = service.open_store(project)
    first = service.queue(project, store, path, "Manual", {"who": "ada"})
    service.execute(project, store, first)
    assert main(["ci", "rerun", str(first)]) == 0
    assert f"rerun of {first} (hello)" in capsys.readouterr().out
    runs = store.list_runs(10)
    second = next(r for r in runs if r.id != first)
    assert second.params == {"who": "ada"} and second.result == "succeeded" and second.reason.startswith("Manual")
    log = Path(next(r for r in store.records(second.id) if r["display"] == "hello")["log"]).read_text()
    assert f"hello ada {second.id}" in log
