"""Approver identity: a listed approver must prove who they are (a personal token, the OS account,
or the studio's login); MLOPS_USER alone never is proof; the requester is recorded with its proof."""
from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from ml_service.ci.server import approvals, identity, service
from ml_service.cli import main
from ml_service.config import load_settings
from tests.ci.helpers import run_text
from tests.conftest import ROOT

FIXTURES = Path(__file__).parent / "fixtures"
ME = identity.os_account()


def mlops_yml(approvers: list[str], self_approval: bool) -> str:
    return (f"models:\n  - {{project: p, name: m}}\nenvironments:\n  production:\n    approval: "
            f"{{approvers: [{', '.join(approvers)}], allow_self_approval: {str(self_approval).lower()}, "
            "timeout_minutes: 60}\n")


@pytest.fixture
def project(tmp_path, monkeypatch):
    (tmp_path / "mlops.yml").write_text(mlops_yml(["lead@example.com"], False))
    monkeypatch.setenv("MLOPS_ROOT", str(tmp_path))
    monkeypatch.setenv("MLOPS_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("MLOPS_USER", "dev@example.com")
    monkeypatch.delenv("MLOPS_TOKEN", raising=False)
    monkeypatch.delenv("MLOPS_MODEL", raising=False)
    return load_settings()


def waiting(settings):
    store = service.open_store(settings)
    run_id = service.queue(settings, store, FIXTURES / "approval.yml", "Manual")
    service.execute(settings, store, run_id)
    assert store.get_run(run_id).status == "waiting"
    return store, run_id


def test_mlops_user_alone_is_never_proof(project, monkeypatch):
    store, run_id = waiting(project)
    monkeypatch.setenv("MLOPS_USER", "lead@example.com")  # a spoofed name
    with pytest.raises(service.CIError, match="lead@example.com is an approver .* only by claim"):
        approvals.decide(load_settings(), store, run_id, True, "spoofed")
    monkeypatch.setenv("MLOPS_TOKEN", "mlops_not-a-real-token")
    with pytest.raises(service.CIError, match="MLOPS_TOKEN is not a token of this workspace"):
        approvals.decide(load_settings(), store, run_id, True, "forged token")
    assert [a["status"] for a in store.approvals(run_id)] == ["pending"]


def test_a_personal_token_proves_an_approver_and_only_its_hash_is_kept(project, monkeypatch):
    store, run_id = waiting(project)
    name, token = identity.create_token(project, "lead@example.com")
    tokens = project.state_dir / "ci" / "tokens.json"
    assert token not in tokens.read_text() and stat.S_IMODE(tokens.stat().st_mode) == 0o600
    monkeypatch.setenv("MLOPS_TOKEN", token)
    decided = approvals.decide(load_settings(), store, run_id, True, "ok")
    assert (decided["approver"], decided["proof"]) == ("lead@example.com", "token")
    approval = store.approvals(run_id)[0]
    assert (approval["approver"], approval["approver_proof"]) == ("lead@example.com", "token")
    assert identity.revoke_tokens(project, "lead@example.com") == 1
    with pytest.raises(identity.IdentityError):
        identity.token_identity(project, token)


def test_the_os_account_is_proof_and_the_requester_is_recorded_with_its_proof(project, monkeypatch):
    (project.root / "mlops.yml").write_text(mlops_yml([ME], True))
    settings = load_settings()
    store, run_id = waiting(settings)
    run = store.get_run(run_id)
    assert (run.requested_by, run.requested_proof) == ("dev@example.com", f"os-account:{ME}")
    decided = approvals.decide(settings, store, run_id, True, "as myself")
    assert (decided["approver"], decided["proof"]) == (ME, "os-account")


def test_a_requester_who_queues_under_another_name_still_cannot_approve_their_own_run(project, monkeypatch):
    (project.root / "mlops.yml").write_text(mlops_yml([ME, "lead@example.com"], False))
    monkeypatch.setenv("MLOPS_USER", "someone-else@example.com")  # the requester hides behind another name
    settings = load_settings()
    store, run_id = waiting(settings)
    with pytest.raises(service.CIError, match=f"{ME} requested run {run_id} and may not approve it"):
        approvals.decide(settings, store, run_id, True, "mine")
    monkeypatch.setenv("MLOPS_TOKEN", identity.create_token(settings, "lead@example.com")[1])
    assert approvals.decide(load_settings(), store, run_id, True, "the lead")["approver"] == "lead@example.com"


def test_the_studio_login_is_proof_and_self_approval_compares_without_case(project, monkeypatch):
    monkeypatch.setenv("MLOPS_TOKEN", identity.create_token(project, "lead@example.com")[1])
    settings = load_settings()
    store, run_id = waiting(settings)  # requested with the lead's token: token:lead@example.com
    assert store.get_run(run_id).requested_proof == f"token:lead@example.com,os-account:{ME}"
    with pytest.raises(service.CIError, match="intruder@example.com is not an approver"):
        approvals.decide(settings, store, run_id, True, "x", approver="intruder@example.com")
    with pytest.raises(service.CIError, match="may not approve it"):
        approvals.decide(settings, store, run_id, True, "x", approver="LEAD@Example.com")
    (project.root / "mlops.yml").write_text(mlops_yml(["lead@example.com", "second@example.com"], False))
    decided = approvals.decide(load_settings(), store, run_id, True, "from the studio", approver="second@example.com")
    assert (decided["approver"], decided["proof"]) == ("second@example.com", "session")
    with pytest.raises(service.CIError, match="no pending approval"):  # a double approve
        approvals.decide(load_settings(), store, run_id, True, "again", approver="second@example.com")


def test_without_listed_approvers_the_claimed_name_is_recorded_as_a_claim(project, monkeypatch):
    (project.root / "mlops.yml").write_text(mlops_yml([], True))
    settings = load_settings()
    store, run_id = waiting(settings)
    decided = approvals.decide(settings, store, run_id, True, "anyone")
    assert (decided["approver"], decided["proof"]) == ("dev@example.com", "claimed")


@pytest.mark.integration
def test_eight_concurrent_approvals_deploy_once(project, monkeypatch, tmp_path):
    store, run_id = waiting(project)
    token = identity.create_token(project, "lead@example.com")[1]
    env = {**os.environ, "MLOPS_TOKEN": token}
    procs = [subprocess.Popen([sys.executable, "-m", "ml_service.cli", "ci", "approve", str(run_id)], cwd=ROOT,
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(8)]
    outcomes = [(p.wait(timeout=300), *p.communicate()) for p in procs]
    assert sorted(code for code, *_ in outcomes) == [0] + [1] * 7, outcomes
    assert all("Traceback" not in err for _, _, err in outcomes)
    logs = "".join(Path(r["log"]).read_text() for r in store.records(run_id) if r["log"])
    assert logs.count("shipping version 7") == 1
    assert store.get_run(run_id).result == "succeeded"


def test_one_decision_wins_even_when_two_read_the_approval_as_pending(project):
    store, run_id = waiting(project)
    approval = store.approvals(run_id, "pending")[0]  # both deciders read it pending, then both write:
    assert store.decide(approval["id"], "approved", "lead@example.com", "first", proof="token") is True
    assert store.decide(approval["id"], "rejected", "other@example.com", "second", proof="token") is False
    decided = store.approvals(run_id)[0]
    assert (decided["status"], decided["approver"], decided["comment"]) == ("approved", "lead@example.com", "first")


def test_token_commands_print_a_token_once_and_list_names_only(project, capsys):
    assert main(["ci", "token", "create", "--name", "lead@example.com"]) == 0
    token = capsys.readouterr().out.strip().splitlines()[-1]
    assert token.startswith("mlops_") and identity.token_identity(project, token).name == "lead@example.com"
    assert main(["ci", "token", "list"]) == 0
    listed = capsys.readouterr().out
    assert "lead@example.com" in listed and token not in listed and f"by {ME}" in listed
    assert main(["ci", "token", "revoke", "lead@example.com"]) == 0
    assert "revoked 1 token(s)" in capsys.readouterr().out


def test_revoking_a_name_removes_only_its_tokens_whatever_the_case(project):
    """Approver names compare without case, so revoking LEAD@example.com ends lead@example.com's tokens too."""
    _, first = identity.create_token(project, "lead@example.com")
    _, second = identity.create_token(project, "Lead@Example.com")
    _, other = identity.create_token(project, "other@example.com")
    assert identity.revoke_tokens(project, "LEAD@example.com") == 2
    for token in (first, second):
        with pytest.raises(identity.IdentityError):
            identity.token_identity(project, token)
    assert identity.token_identity(project, other) == identity.Identity("other@example.com", "token")
    assert [t["name"] for t in identity.list_tokens(project)] == ["other@example.com"]
    assert identity.revoke_tokens(project, "nobody") == 0


@pytest.mark.parametrize("name", ["", "two words", "tab\there"])
def test_a_token_name_is_one_word(project, name, monkeypatch):
    monkeypatch.setattr(identity, "os_account", lambda: "")
    with pytest.raises(identity.UsageError, match="must be one word"):
        identity.create_token(project, name)
    assert not (project.state_dir / "ci" / "tokens.json").exists()


def test_what_a_caller_proves_and_how_it_is_recorded(project, monkeypatch):
    assert identity.proven(project, "ada", env={}) == [identity.Identity("ada", "session")]
    assert identity.proven(project, None, env={}) == [identity.Identity(ME, "os-account")]
    _, token = identity.create_token(project, "tok")
    found = identity.proven(project, None, env={"MLOPS_TOKEN": f" {token}\n"})
    assert found == [identity.Identity("tok", "token"), identity.Identity(ME, "os-account")]
    assert identity.parse(identity.describe(found)) == found
    assert identity.parse("claimed:x,bogus:y,token:") == [identity.Identity("x", "claimed")]
    assert not identity.Identity("x", "claimed").proven and identity.Identity("x", "token").proven


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


def test_a_pipeline_step_never_holds_the_approvers_token(tmp_path, monkeypatch):
    """The approver exported MLOPS_TOKEN in the shell the engine runs from; a step of another run (anyone's pushed
    code) runs `mlops ci approve` on the waiting release. It must not be decided with the approver's token."""
    from tests.ci.helpers import make_project, run_text

    settings = make_project(tmp_path, monkeypatch, mlops_yml(["lead@example.com"], False))
    store, run_id = waiting(settings)
    _, token = identity.create_token(settings, "lead@example.com")
    monkeypatch.setenv("MLOPS_TOKEN", token)
    step = f"{sys.executable} -m ml_service.cli ci approve {run_id} --comment from-a-step"
    _, hostile = run_text(load_settings(), f"steps:\n  - script: {step}\n")
    assert hostile.result == "failed"  # the step's approve was refused
    assert [a["status"] for a in store.approvals(run_id)] == ["pending"]
    assert store.get_run(run_id).status == "waiting"


def test_an_ml_pipeline_step_gets_no_mlops_token(tmp_path, monkeypatch):
    from ml_service.pipelines.runner import step_env
    from tests.ci.helpers import make_project

    settings = make_project(tmp_path, monkeypatch)
    monkeypatch.setenv("MLOPS_TOKEN", "mlops_the-approvers-token")
    assert "MLOPS_TOKEN" not in step_env(settings)


def test_a_pipeline_step_cannot_approve_as_the_os_account(tmp_path, monkeypatch):
    """The OS account that runs the engine is an approver (a laptop's owner); a step of another run (anyone's pushed
    code, daemonized so that it is not the step's child) runs `mlops ci approve` on the waiting release: refused."""
    from tests.ci.helpers import make_project, run_text

    settings = make_project(tmp_path, monkeypatch, mlops_yml([ME], True))
    store, run_id = waiting(settings)
    marker = tmp_path / "approve-ended"
    approve = f"{sys.executable} -m ml_service.cli ci approve {run_id} --comment from-a-step"
    script = f"( setsid sh -c '{approve}; touch {marker}' & ) ; while [ ! -e {marker} ]; do sleep 0.1; done"
    run_text(load_settings(), f"steps:\n  - script: \"{script}\"\n")
    assert marker.exists()
    assert [a["status"] for a in store.approvals(run_id)] == ["pending"]
    assert store.get_run(run_id).status == "waiting"
