"""Conformance of the local engine with Azure Pipelines semantics: one YAML fixture per construct."""
from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from ml_service.ci.model.template import TemplateError
from ml_service.ci.server import approvals, service
from ml_service.config import load_settings
from tests.support.procs import running

FIXTURES = Path(__file__).parent / "fixtures"

MLOPS_YML = """
models:
  - {project: p, name: m}
  - {project: second, name: second_model}
environments:
  production:
    approval: {approvers: [lead@example.com], allow_self_approval: false, timeout_minutes: 60}
ci:
  variable_groups:
    vault:
      variables: {REGION: local-region}
      secrets: [GROUP_SECRET]
"""


@pytest.fixture
def project(tmp_path, monkeypatch):
    (tmp_path / "mlops.yml").write_text(MLOPS_YML)
    monkeypatch.setenv("MLOPS_ROOT", str(tmp_path))
    monkeypatch.setenv("MLOPS_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("MLOPS_USER", "dev@example.com")
    monkeypatch.setenv("GROUP_SECRET", "group-secret-456")
    monkeypatch.delenv("MLOPS_MODEL", raising=False)  # e.g. set by the pipeline that runs these tests
    return load_settings()


def prove(monkeypatch, settings, name: str) -> None:
    """Present a personal token of name (MLOPS_TOKEN): an approver's proof of identity."""
    from ml_service.ci.server.identity import create_token

    monkeypatch.setenv("MLOPS_TOKEN", create_token(settings, name)[1])


def run(settings, name: str, params: dict | None = None):
    store = service.open_store(settings)
    run_id = service.queue(settings, store, FIXTURES / name, "Manual", params or {})
    service.execute(settings, store, run_id)
    records = store.records(run_id)
    results = {r["display"]: r["result"] or r["status"] for r in records}
    logs = "".join(Path(r["log"]).read_text() for r in records if r["log"] and Path(r["log"]).exists())
    return store, store.get_run(run_id), results, logs, records


def test_a_failed_job_skips_its_dependants_unless_their_condition_says_otherwise(project):
    _, result, results, logs, _ = run(project, "failure_flow.yml")
    assert results["A"] == "Failed" and results["B"] == "Skipped"
    assert results["C"] == "Succeeded" and results["D"] == "Succeeded"
    assert results["First"] == "Failed"
    assert results["Second"] == "Skipped" and results["E"] == "Skipped"  # default: after the previous stage
    assert results["Third"] == "Succeeded" and results["F"] == "Succeeded"
    assert "B must not run" not in logs and "E must not run" not in logs and "G must not run" not in logs
    assert result.result == "failed"


def test_an_output_variable_crosses_jobs_and_stages(project):
    _, result, results, logs, _ = run(project, "outputs.yml")
    assert "same job sees 42" in logs and "job got 42" in logs and "stage got 42" in logs
    assert results["Consumer"] == "Succeeded" and results["S2"] == "Succeeded"
    assert result.result == "succeeded"


@pytest.mark.parametrize("params, inserted, absent", [
    ({}, "inserted by else", "inserted by if"),
    ({"extra": "true"}, "inserted by if", "inserted by else"),
    ({"mode": "thorough"}, "inserted by elseif", "inserted by if"),
])
def test_template_if_elseif_else_and_each_insert_steps(project, params, inserted, absent):
    _, result, _, logs, _ = run(project, "insertion.yml", params)
    assert inserted in logs and absent not in logs
    assert "each alpha" in logs and "each beta" in logs
    assert "from a template in" in logs and result.result == "succeeded"


def test_typed_parameters_are_checked(project):
    with pytest.raises(service.CIError, match="must be one of"):
        run(project, "insertion.yml", {"mode": "sloppy"})
    with pytest.raises(service.CIError, match="must be a boolean"):
        run(project, "insertion.yml", {"extra": "perhaps"})
    with pytest.raises(service.CIError, match="unknown parameter"):
        run(project, "insertion.yml", {"nope": 1})
    with pytest.raises(service.CIError, match="required"):
        run(project, "timeout.yml")


def test_a_secret_never_appears_in_any_log_or_record(project):
    store, result, results, logs, records = run(project, "secrets.yml")
    assert result.result == "succeeded"
    assert "group secret in env? [absent]" in logs  # secrets are not exported unless mapped with env:
    assert "mapped: *** and macro: *** and ***" in logs
    assert "plain=visible-value fromTemplate=template-value region=local-region" in logs
    everything = logs + repr(records) + (store.path.read_bytes().decode(errors="replace"))
    for secret in ("runtime-secret-123", "group-secret-456"):
        assert secret not in everything
        for log in (store.directory / "logs").rglob("*.log"):
            assert secret not in log.read_text()
    assert "Uses ***" in results


def test_a_missing_group_secret_is_a_clear_error(project, monkeypatch):
    monkeypatch.delenv("GROUP_SECRET")
    with pytest.raises(service.CIError, match="secret GROUP_SECRET is not set"):
        run(project, "secrets.yml")


def test_predefined_variables_runtime_expressions_and_macros(project):
    store, result, _, logs, _ = run(project, "agent.yml")
    run_id = result.id
    work = store.work_dir(run_id)
    assert f"id={run_id} reason=Manual branch=refs/heads/main isMain=True" in logs
    assert f"sources={work / 's'} default={work / 's'}" in logs  # the run's own checkout (ci/sources.py)
    assert f"temp={work / '_temp'} workspace={work} greeting=hello" in logs
    assert f"cwd={work / '_temp'}" in logs  # workingDirectory
    assert "$(undefined.variable) stays" in logs  # unknown macros are left as they are


def test_retry_continue_on_error_logging_commands_and_unsupported_tasks(project):
    _, result, results, logs, records = run(project, "reliability.yml")
    assert results["flaky"] == "Succeeded" and "attempt 3" in logs and "retry 2 of 2" in logs
    assert results["allowed to fail"] == "SucceededWithIssues"
    assert results["completes as failed"] == "Failed"
    detail = next(r["detail"] for r in records if r["display"] == "completes as failed")
    assert "warning: something to look at" in detail
    unsupported = next(r for r in records if r["display"] == "unsupported")
    assert unsupported["result"] == "Failed" and "AzureCLI@2 needs Azure" in unsupported["detail"]
    assert result.result == "failed"


def test_a_timeout_kills_the_steps_children(project, tmp_path):
    pid_file = tmp_path / "child.pid"
    _, result, results, _, records = run(project, "timeout.yml", {"pidFile": str(pid_file)})
    assert results["hangs"] == "Failed"
    assert "timed out" in next(r["detail"] for r in records if r["display"] == "hangs")
    child = int(pid_file.read_text())
    deadline = time.monotonic() + 10
    while running(child) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not running(child)


def test_approval_waits_refuses_strangers_and_self_then_resumes(project, monkeypatch):
    store, result, results, logs, _ = run(project, "approval.yml")
    assert result.status == "waiting" and results["Ship"] == "waiting" and "shipping" not in logs
    assert store.approvals(result.id, "pending")[0]["environment"] == "production"
    with pytest.raises(service.CIError, match="not an approver"):
        approvals.decide(project, store, result.id, True, "let me")
    monkeypatch.setenv("MLOPS_USER", "lead@example.com")
    lead = load_settings()
    with pytest.raises(service.CIError, match="only by claim"):  # MLOPS_USER alone is no proof
        approvals.decide(lead, store, result.id, True, "looks good")
    prove(monkeypatch, lead, "lead@example.com")
    approvals.decide(lead, store, result.id, True, "looks good")
    service.execute(lead, store, result.id)
    done = store.get_run(result.id)
    assert done.status == "completed" and done.result == "succeeded"
    approval = store.approvals(result.id)[0]
    assert approval["status"] == "approved" and approval["approver"] == "lead@example.com"
    assert approval["approver_proof"] == "token"
    assert approval["comment"] == "looks good" and approval["decided"] >= approval["requested"]
    shipped = "".join(Path(r["log"]).read_text() for r in store.records(result.id) if r["log"])
    assert "shipping version 7" in shipped


def test_the_requester_may_not_approve_when_self_approval_is_off(project, monkeypatch):
    monkeypatch.setenv("MLOPS_USER", "lead@example.com")
    lead = load_settings()
    store, result, *_ = run(lead, "approval.yml")
    prove(monkeypatch, lead, "LEAD@example.com")
    with pytest.raises(service.CIError, match="may not approve it"):
        approvals.decide(lead, store, result.id, True, "self")


def test_reject_and_timeout_end_the_run(project, monkeypatch):
    monkeypatch.setenv("MLOPS_USER", "lead@example.com")
    lead = load_settings()
    store, first, *_ = run(project, "approval.yml")
    prove(monkeypatch, lead, "lead@example.com")
    approvals.decide(lead, store, first.id, False, "not today")
    assert store.get_run(first.id).result == "rejected"
    store, second, *_ = run(project, "approval.yml")
    approval = store.approvals(second.id, "pending")[0]
    with store._db() as db:  # the approval's deadline passes
        db.execute("UPDATE approvals SET timeout_at = ? WHERE id = ?", (time.time() - 1, approval["id"]))
    service.open_store(project)
    assert store.get_run(second.id).result == "rejected"
    assert store.approvals(second.id)[0]["status"] == "timed out"


def test_malformed_yaml_names_the_file(project, tmp_path):
    bad = tmp_path / "bad.yml"
    bad.write_text("steps: [unclosed\n")
    store = service.open_store(project)
    run_id = service.queue(project, store, bad, "Manual")
    with pytest.raises(service.CIError, match=r"bad.yml:2: malformed YAML"):
        service.execute(project, store, run_id)
    assert store.get_run(run_id).result == "failed"


def test_stage_and_job_templates_with_typed_parameters_and_a_variable_in_every_step(project):
    _, result, results, logs, records = run(project, "stage_templates.yml", {"project": "gamma"})
    assert result.result == "succeeded"
    for job in ("Quoted", "Plain"):  # a pipeline variable is the step's environment variable of the same name
        assert f"job {job} for gamma with MLOPS_MODEL=second" in logs
    assert logs.count("selected second") == 2  # so every mlops command in the steps acts on that model
    assert "LOUD Quoted" in logs and "LOUD Plain" not in logs  # boolean 'true' and false, as Azure reads them
    assert "published" not in logs and "Publish" not in results  # a stage inserted only when publish is true
    assert "copies=2" in logs and "a number, compared as one" in logs


def test_a_template_parameter_error_names_the_template(project, tmp_path):
    shutil.copytree(FIXTURES / "templates", tmp_path / "templates")
    bad = tmp_path / "bad_stages.yml"
    bad.write_text("stages:\n  - template: templates/stages.yml\n    parameters:\n      publish: 'true'\n")
    store = service.open_store(project)
    with pytest.raises(service.CIError, match=r"stages\.yml(:\d+)?: parameter .project. is required"):
        service.execute(project, store, service.queue(project, store, bad, "Manual"))


def test_template_errors_are_typed():
    from ml_service.ci.model.template import resolve_parameters

    with pytest.raises(TemplateError, match="must be a number"):
        resolve_parameters([{"name": "n", "type": "number"}], {"n": "x"}, "f.yml")
    assert resolve_parameters([{"name": "n", "type": "number", "default": "3"}], {}, "f.yml") == {"n": 3}


def test_a_newer_waiting_run_supersedes_older_waiting_runs_of_the_same_pipeline(project):
    store, first, *_ = run(project, "approval.yml")
    assert store.get_run(first.id).status == "waiting"
    store, second, *_ = run(project, "approval.yml")
    old = store.get_run(first.id)
    assert (old.status, old.result) == ("completed", "canceled")
    assert store.approvals(first.id)[0]["status"] == "rejected"
    assert store.approvals(first.id)[0]["comment"] == f"superseded by run {second.id}"
    assert store.get_run(second.id).status == "waiting"  # only the newest waits
    assert f"superseded: run(s) {first.id} of approval" in " ".join(store.get_run(second.id).state["summaries"])
    store, other, *_ = run(project, "secrets.yml")  # another pipeline supersedes nothing
    assert store.get_run(second.id).status == "waiting"
