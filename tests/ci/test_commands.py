"""`mlops ci ...` in-process (ml_service.cli.main): approve, reject and pending on a run waiting for approval
(proof of an approver required, the decision applied to the run named or else the newest waiting one), rerun
with the same parameters, list within its limit, cancel. The effects are read from the run store."""
from __future__ import annotations

from pathlib import Path

import pytest

from ml_service.ci.server import approvals, service
from ml_service.ci.server.identity import create_token
from ml_service.cli import main
from tests.ci.helpers import FIXTURES, all_logs, make_project, run_text

MLOPS_YML = """
models:
  - {project: p, name: m}
environments:
  production:
    approval: {approvers: [lead@example.com], timeout_minutes: 60}
  staging:
    approval: {timeout_minutes: 60}
"""


@pytest.fixture
def project(tmp_path, monkeypatch):
    return make_project(tmp_path, monkeypatch, MLOPS_YML)


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
        approvals.decide(project, store, run.id, False, "no", approver="intruder@example.com")
    assert store.get_run(run.id).status == "waiting"


def test_an_approver_rejects_and_the_run_ends_rejected(project, capsys, monkeypatch):
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
    monkeypatch.setenv("MLOPS_USER", "lead@example.com")
    assert main(["ci", "approve", str(run.id), "--comment", "ship"]) != 0  # a claimed name is no proof
    monkeypatch.setenv("MLOPS_TOKEN", create_token(project, "lead@example.com")[1])
    assert main(["ci", "approve", str(run.id), "--comment", "ship"]) == 0
    assert store.get_run(run.id).result == "succeeded"
    logs = "".join(Path(r["log"]).read_text() for r in store.records(run.id) if r["log"])
    assert "shipping version 7" in logs
    assert main(["ci", "pending"]) == 0 and "nothing waits" in capsys.readouterr().out


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


STAGED = """stages:
  - stage: Deploy
    jobs:
      - deployment: Ship
        environment: staging
        strategy:
          runOnce:
            deploy:
              steps:
                - bash: echo "shipped $(Build.DefinitionName)"
"""


def test_approve_without_a_run_decides_the_newest_waiting_run_only(project):
    store, first = run_text(project, STAGED, "first.yml")
    store, second = run_text(project, STAGED, "second.yml")
    assert main(["ci", "approve", "--comment", "newest"]) == 0
    assert store.get_run(second.id).result == "succeeded" and "shipped second" in all_logs(store, second.id)
    assert store.get_run(first.id).status == "waiting" and "shipped" not in all_logs(store, first.id)
    assert [a["status"] for a in store.approvals(first.id)] == ["pending"]
    assert main(["ci", "reject", str(first.id), "--comment", "named"]) == 0
    assert store.get_run(first.id).result == "rejected"


def test_list_shows_the_newest_runs_within_its_limit(project, capsys):
    store = service.open_store(project)
    path = project.root / "p.yml"
    path.write_text("steps:\n  - bash: echo x\n")
    ids = [service.queue(project, store, path, reason, {}) for reason in ("Manual", "Schedule", "IndividualCI")]
    assert main(["ci", "list", "--limit", "2"]) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines()[1:]]
    assert [int(row[0]) for row in rows] == [ids[2], ids[1]]


def test_cancel_ends_a_waiting_run_and_a_completed_one_stays_as_it_was(project, capsys):
    store, run = run_text(project, STAGED, "staged.yml")
    assert main(["ci", "cancel", str(run.id)]) == 0
    assert (store.get_run(run.id).status, store.get_run(run.id).result) == ("completed", "canceled")
    assert main(["ci", "cancel", str(run.id)]) != 0
    assert "already completed" in capsys.readouterr().err
    assert store.get_run(run.id).result == "canceled"
    assert main(["ci", "approve", str(run.id)]) != 0  # nothing waits any more
    assert "shipped" not in all_logs(store, run.id)


@pytest.mark.parametrize("script, code, result", [
    ("echo fine", 0, "succeeded"),
    ("exit 3", 1, "failed"),
    ("echo '##vso[task.complete result=SucceededWithIssues;]'", 0, "succeededWithIssues"),
])
def test_run_exits_non_zero_exactly_when_the_run_did_not_succeed(project, script, code, result):
    path = project.root / "p.yml"
    path.write_text(f"steps:\n  - bash: {script}\n")
    assert main(["ci", "run", str(path)]) == code
    assert service.open_store(project).list_runs(1)[0].result == result


def test_run_passes_parameters_as_text_for_the_pipeline_to_type(project):
    path = project.root / "p.yml"
    path.write_text("parameters:\n  - {name: n, type: number}\n  - {name: s, type: string, default: x}\nsteps:\n"
                    "  - bash: echo \"n=${{ parameters.n }} s=$S\"\n    env: {S: '${{ parameters.s }}'}\n"
                    "    displayName: show\n")
    assert main(["ci", "run", str(path), "--param", "n=7", "--param", "s=a=b"]) == 0
    store = service.open_store(project)
    run = store.list_runs(1)[0]
    assert run.params == {"n": "7", "s": "a=b"}
    assert "n=7 s=a=b" in all_logs(store, run.id)
    assert main(["ci", "run", str(path), "--param", "n=seven"]) != 0
    assert store.list_runs(1)[0].result == "failed"


def test_run_with_no_triggers_runs_the_pipeline_named_and_nothing_its_completion_triggers(project):
    """`mlops ci run --no-triggers` (cli/ci.py chain=not args.no_triggers): the pipeline that names `up` as a
    triggering resource runs after `up` only without the flag."""
    import subprocess

    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=project.root, check=True)
    subprocess.run(["git", "-c", "user.email=a@b", "-c", "user.name=a", "commit", "-q", "--allow-empty", "-m", "one"],
                   cwd=project.root, check=True)
    folder = project.root / ".pipelines"
    folder.mkdir()
    (folder / "up.yml").write_text("trigger: none\nsteps:\n  - bash: echo up\n")
    (folder / "down.yml").write_text("trigger: none\nresources:\n  pipelines:\n"
                                     "    - {pipeline: source, source: up, trigger: true}\n"
                                     "steps:\n  - bash: echo down\n")
    store = service.open_store(project)
    assert main(["ci", "run", "up", "--no-triggers"]) == 0
    assert [r.pipeline for r in store.list_runs()] == ["up"]
    assert main(["ci", "run", "up"]) == 0
    assert sorted(r.pipeline for r in store.list_runs()) == ["down", "up", "up"]
