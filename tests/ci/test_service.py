"""Runs and approvals of the local CI service, exactly (issue 19, mutation testing of service.py): which
pipeline a name selects, what a queued run records, the agent's predefined variables, how a run ends
(succeeded, failed with the reason, canceled, waiting), completion triggers, and every decision on an
approval: who may decide, with which proof, self-approval, reject, supersede, cancel and timeout. Issue 29 added
approvals per gated stage, the approval timeout in minutes, decisions applied only to the run named, and that
only a queued or waiting run ever runs. In-process on a real run store and real git in tmp_path; pipelines run
real bash steps."""
from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ml_service.ci.model.pipeline import Var
from ml_service.ci.server import identity as ident
from ml_service.ci.server import approvals, service
from ml_service.ci.server.identity import create_token
from ml_service.ci.server.store import Store
from ml_service.config import ConfigError, load_settings
from ml_service.sections import Approval
from ml_service.workspace.owners import owner_tag

MLOPS_YML = """
models:
  - {project: alpha, name: alpha_model}
  - {project: beta, name: beta_model}
environments:
  production:
    approval: {approvers: [lead@example.com, Boss@Example.com], allow_self_approval: false, timeout_minutes: 60}
  selfok:
    approval: {approvers: [lead@example.com]}
  staging:
    approval: {timeout_minutes: 60}
  open: {}
"""
ECHO = "steps:\n  - bash: echo hello\n    displayName: hello\n"
LISTED = "environment production (approvers: lead@example.com, Boss@Example.com)"


def git(root: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, check=True).stdout.strip()


@pytest.fixture
def project(tmp_path, monkeypatch):
    (tmp_path / "mlops.yml").write_text(MLOPS_YML)
    monkeypatch.setenv("MLOPS_ROOT", str(tmp_path))
    monkeypatch.setenv("MLOPS_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("MLOPS_USER", "dev@example.com")
    for name in ("MLOPS_MODEL", "MLOPS_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    return load_settings()


@pytest.fixture(autouse=True)
def only_real_processes_are_signalled(monkeypatch):
    """os.kill refuses pid 0 and negative pids here: a mutant of cancel() that signals a run without a pid
    would otherwise signal this whole process group (the test runner, a mutation run and its parent)."""
    kill = os.kill

    def guarded(pid: int, sig: int) -> None:
        if pid <= 0:
            raise AssertionError(f"os.kill({pid}, {sig}) would signal a process group")
        kill(pid, sig)

    monkeypatch.setattr(os, "kill", guarded)


def as_user(monkeypatch, name: str):
    monkeypatch.setenv("MLOPS_USER", name)
    return load_settings()


def prove(monkeypatch, settings, name: str) -> None:
    monkeypatch.setenv("MLOPS_TOKEN", create_token(settings, name)[1])


def pipeline(settings, text: str, name: str = "pipe.yml") -> Path:
    path = settings.root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def run_text(settings, text: str, name: str = "pipe.yml", **kwargs):
    store = service.open_store(settings)
    run_id = service.queue(settings, store, pipeline(settings, text, name), "Manual", {})
    ran = service.execute(settings, store, run_id, **kwargs)
    return store, store.get_run(run_id), ran


def waiting(settings, store, environment: str = "production", stage: str = "Deploy") -> int:
    """A queued run that waits for the approval of stage in environment, with its job record waiting."""
    run_id = service.queue(settings, store, pipeline(settings, ECHO), "Manual", {})
    store.update_run(run_id, status="waiting")
    store.request_approval(run_id, stage, "Ship", environment, 3600)
    store.set_record(run_id, f"{stage}/Ship", "job", status="waiting", display="Ship")
    store.set_record(run_id, f"{stage}/Make", "job", status="completed", result="Succeeded", display="Make")
    return run_id


# --- which pipeline ------------------------------------------------------------------------------------------------

def test_pipeline_files_and_resolve_by_path_name_or_kind(project, monkeypatch, tmp_path):
    folder = project.root / ".pipelines"
    folder.mkdir()
    for name in ("beta-build", "alpha-build", "release", "alpha-retrain"):
        (folder / f"{name}.yml").write_text(ECHO)
    (folder / "notes.txt").write_text("not a pipeline")
    files = service.pipeline_files(project.root)
    assert list(files) == ["alpha-build", "alpha-retrain", "beta-build", "release"]
    assert files["release"] == folder / "release.yml"
    assert service.resolve_file(project, "release") == folder / "release.yml"
    assert service.resolve_file(project, "build") == folder / "alpha-build.yml"  # the first model's
    assert service.resolve_file(project, "retrain") == folder / "alpha-retrain.yml"
    monkeypatch.chdir(project.root)
    assert service.resolve_file(project, ".pipelines/beta-build.yml") == folder / "beta-build.yml"  # resolved
    assert service.resolve_file(project, str(folder / "release.yml")) == folder / "release.yml"
    monkeypatch.setenv("MLOPS_MODEL", "beta")
    assert service.resolve_file(load_settings(), "build") == folder / "beta-build.yml"
    with pytest.raises(service.CIError) as caught:
        service.resolve_file(load_settings(), "release-ish")
    assert str(caught.value) == "no pipeline 'release-ish' (known: alpha-build, alpha-retrain, beta-build, release)"
    with pytest.raises(service.CIError) as caught:
        service.resolve_file(load_settings(), "retrain")  # beta has no retrain pipeline
    assert str(caught.value).startswith("no pipeline 'retrain' (known: ")
    with pytest.raises(service.CIError) as caught:  # a selection made after the settings were read
        service.resolve_file(dataclasses.replace(project, selected="gamma"), "build")
    assert str(caught.value) == f"no model project 'gamma' in {project.root / 'mlops.yml'} (known: alpha, beta)"
    other = tmp_path / "elsewhere"
    (other / ".pipelines").mkdir(parents=True)
    (other / ".pipelines" / "own.yml").write_text(ECHO)
    assert service.resolve_file(project, "own", other) == other / ".pipelines" / "own.yml"
    with pytest.raises(service.CIError) as caught:
        service.resolve_file(project, "own", tmp_path / "empty")
    assert str(caught.value) == "no pipeline 'own' (known: none)"


def test_a_kind_without_models_is_only_a_name(tmp_path, monkeypatch):
    (tmp_path / "mlops.yml").write_text("environments: {}\n")
    monkeypatch.setenv("MLOPS_ROOT", str(tmp_path))
    monkeypatch.setenv("MLOPS_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.delenv("MLOPS_MODEL", raising=False)
    (tmp_path / ".pipelines").mkdir()
    (tmp_path / ".pipelines" / "build.yml").write_text(ECHO)
    settings = load_settings()
    assert service.resolve_file(settings, "build") == tmp_path / ".pipelines" / "build.yml"
    with pytest.raises(service.CIError) as caught:
        service.resolve_file(settings, "release")
    assert str(caught.value) == "no pipeline 'release' (known: build)"


@pytest.mark.parametrize("text, expected", [
    ("name=value", ("name", "value")), (" name = spaced ", ("name", " spaced ")), ("a=b=c", ("a", "b=c")),
    ("empty=", ("empty", "")),
])
def test_parse_param_keeps_the_value_as_text(text, expected):
    assert service.parse_param(text) == expected


@pytest.mark.parametrize("text", ["novalue", "=value", "  =x", ""])
def test_parse_param_refuses_what_is_not_name_equals_value(text):
    with pytest.raises(service.CIError) as caught:
        service.parse_param(text)
    assert str(caught.value) == f"--param expects NAME=VALUE, got '{text}'"


# --- queue and the agent's variables -------------------------------------------------------------------------------

def test_a_queued_run_records_the_checkout_the_requester_and_its_proof(project, monkeypatch):
    assert service.git_facts(project.root) == ("", "")
    git(project.root, "init", "-q", "-b", "feature/x")
    git(project.root, "-c", "user.email=a@b", "-c", "user.name=a", "commit", "-q", "--allow-empty", "-m", "one")
    commit = git(project.root, "rev-parse", "HEAD")
    assert service.git_facts(project.root) == ("feature/x", commit)
    store = service.open_store(project)
    assert store.directory == project.state_dir / "ci"
    path = pipeline(project, ECHO)
    first = store.get_run(service.queue(project, store, path, "Manual", {"p": "1"}))
    assert (first.pipeline, first.file, first.reason, first.branch, first.commit_sha) == \
        ("pipe", str(path), "Manual", "feature/x", commit)
    assert (first.status, first.requested_by, first.params, first.source_dir) == \
        ("queued", "dev@example.com", {"p": "1"}, str(project.root))
    assert first.requested_proof == f"os-account:{ident.os_account()}"
    second = store.get_run(service.queue(project, store, path, "IndividualCI", branch="main", commit="abc",
                                         resources={"up": {"runID": 1}}, triggered_by=first.id))
    assert (second.branch, second.commit_sha, second.resources, second.triggered_by, second.params) == \
        ("main", "abc", {"up": {"runID": 1}}, first.id, {})
    third = store.get_run(service.queue(project, store, path, "Manual", branch="other"))
    assert (third.branch, third.commit_sha) == ("other", commit)  # only what is missing comes from git
    fourth = store.get_run(service.queue(project, store, path, "Manual", commit="def"))
    assert (fourth.branch, fourth.commit_sha) == ("feature/x", "def")
    prove(monkeypatch, project, "ada")
    proven = store.get_run(service.queue(project, store, path, "Manual"))
    assert proven.requested_proof == f"token:ada,os-account:{ident.os_account()}"
    monkeypatch.setenv("MLOPS_TOKEN", "mlops_forged")
    with pytest.raises(service.CIError) as caught:
        service.queue(project, store, path, "Manual")
    assert str(caught.value) == "MLOPS_TOKEN is not a token of this workspace (mlops ci token create makes one)"
    assert len(store.list_runs()) == 5
    assert service.identity(project) == "dev@example.com"


def test_the_source_dir_given_is_where_git_facts_come_from(project, tmp_path):
    source = tmp_path / "checkout"
    source.mkdir()
    git(source, "init", "-q", "-b", "trunk")
    git(source, "-c", "user.email=a@b", "-c", "user.name=a", "commit", "-q", "--allow-empty", "-m", "one")
    store = service.open_store(project)
    run = store.get_run(service.queue(project, store, pipeline(project, ECHO), "Manual", source_dir=source))
    assert (run.branch, run.commit_sha, run.source_dir) == ("trunk", git(source, "rev-parse", "HEAD"), str(source))


def test_predefined_variables(project):
    store = service.open_store(project)
    run_id = service.queue(project, store, pipeline(project, ECHO), "Schedule", branch="feature/deep/x",
                           commit="c0ffee",
                           resources={"up": {"runID": 4, "runName": "up #4", "pipelineName": "up",
                                             "sourceBranch": "refs/heads/main"}})
    store.update_run(run_id, created=time.mktime((2020, 2, 29, 12, 0, 0, 0, 0, -1)))
    run = store.get_run(run_id)
    got = service.predefined(project, store, run)
    assert got["Build.BuildNumber"].value == f"20200229.{run_id}"
    work = store.work_dir(run_id)
    name = project.root.name
    assert all(var.readonly and var.literal and not var.secret for var in got.values())
    assert {k: v.value for k, v in got.items()}.items() >= dict({  # and more (issue 23: Agent.Id, CollectionUri ...)
        "Build.BuildId": str(run_id),
        "Build.BuildNumber": f"{time.strftime('%Y%m%d', time.localtime(run.created))}.{run_id}",
        "Build.DefinitionName": "pipe", "Build.Reason": "Schedule",
        "Build.SourceBranch": "refs/heads/feature/deep/x", "Build.SourceBranchName": "x",
        "Build.SourceVersion": "c0ffee", "Build.Repository.LocalPath": str(work / "s"),
        "Build.SourcesDirectory": str(work / "s"), "Build.Repository.Name": name,
        "Build.RequestedFor": "dev@example.com", "Build.BuildUri": f"mlops-ci://{name}/runs/{run_id}",
        "Build.ArtifactStagingDirectory": str(work / "a"), "Build.BinariesDirectory": str(work / "b"),
        "System.DefaultWorkingDirectory": str(work / "s"), "System.TeamProject": name,
        "System.DefinitionName": "pipe", "Agent.TempDirectory": str(work / "_temp"),
        "Agent.BuildDirectory": str(work), "Pipeline.Workspace": str(work), "Agent.OS": "Linux",
        "Agent.Name": "local", "Agent.WorkFolder": str(store.directory / "work"),
        "Resources.Pipeline.up.runID": "4", "Resources.Pipeline.up.runName": "up #4",
        "Resources.Pipeline.up.pipelineName": "up", "Resources.Pipeline.up.sourceBranch": "refs/heads/main",
        "Resources.Pipeline.up.sourceCommit": ""}).items()
    assert all((work / sub).is_dir() for sub in ("a", "b", "s", "_temp", "TestResults"))
    assert service.predefined(project, store, run)["Build.BuildId"] == Var(str(run_id), readonly=True, literal=True)
    tagged = store.get_run(service.queue(project, store, pipeline(project, ECHO), "Manual", branch="refs/tags/v1",
                                         commit="c"))
    got = service.predefined(project, store, tagged)
    assert (got["Build.SourceBranch"].value, got["Build.SourceBranchName"].value) == ("refs/tags/v1", "v1")
    store.update_run(tagged.id, branch="")
    got = service.predefined(project, store, store.get_run(tagged.id))
    assert (got["Build.SourceBranch"].value, got["Build.SourceBranchName"].value) == ("refs/heads/main", "main")
    assert not any(k.startswith("Resources.") for k in got)


def test_approval_config(project):
    assert approvals.approval_config(project, "production") == Approval(
        approvers=("lead@example.com", "Boss@Example.com"), allow_self_approval=False, timeout_minutes=60)
    assert approvals.approval_config(project, "staging") == Approval(timeout_minutes=60)
    for environment in ("open", "nowhere"):
        assert approvals.approval_config(project, environment) is None


def test_an_approval_that_is_not_a_mapping_is_refused_not_taken_as_no_check(project):
    """`approval: "yes"` once meant no check at all; now mlops.yml is refused, naming the key."""
    (project.root / "mlops.yml").write_text(MLOPS_YML + "  odd:\n    approval: \"yes\"\n")
    with pytest.raises(ConfigError, match=r"mlops.yml: environments.odd.approval: expected a mapping"):
        load_settings()


# --- execute -------------------------------------------------------------------------------------------------------

def test_a_run_succeeds_and_records_who_ran_it(project):
    reports, seen = [], []
    store = service.open_store(project)

    def report(path, fields):
        reports.append((path, fields))
        seen.append(store.get_run(run_id).status)

    run_id = service.queue(project, store, pipeline(project, ECHO), "Manual")
    ran = service.execute(project, store, run_id, report)
    run = store.get_run(run_id)
    assert ran == [run.id] and seen and set(seen) == {"running"}  # what the studio shows while it runs
    assert (run.status, run.result, run.pid, run.owner) == ("completed", "succeeded", os.getpid(), owner_tag())
    assert run.started and run.finished >= run.started
    assert not any(path.startswith("run:") for path, _ in reports)  # a header only for a triggered run
    assert any(fields.get("display") == "hello" for _, fields in reports)
    log = Path(next(r for r in store.records(run.id) if r["display"] == "hello")["log"]).read_text()
    assert "hello" in log


def test_a_job_reads_a_variable_group_of_the_workspace(project):
    with open(project.root / "mlops.yml", "a") as config:
        config.write("ci:\n  variable_groups:\n    vault:\n      variables: {REGION: north}\n")
    settings = load_settings()
    text = ("jobs:\n  - job: A\n    variables:\n      - group: vault\n    steps:\n"
            "      - bash: echo \"region $(REGION)\"\n        displayName: region\n")
    store, run, _ = run_text(settings, text)
    assert run.result == "succeeded"
    assert "region north" in Path(next(r for r in store.records(run.id) if r["display"] == "region")["log"]).read_text()


@pytest.mark.parametrize("text, result", [
    ("steps:\n  - bash: exit 3\n", "failed"),
    ("steps:\n  - bash: exit 3\n    continueOnError: true\n", "succeededWithIssues"),
])
def test_the_run_result_is_the_engine_result_in_azure_spelling(project, text, result):
    _, run, _ = run_text(project, text)
    assert (run.status, run.result) == ("completed", result)


@pytest.mark.parametrize("text, reason", [
    ("steps: [unclosed\n", "malformed YAML"),
    ("stepz:\n  - bash: x\n", "stepz"),
    ("variables:\n  Build.BuildId: mine\nsteps:\n  - bash: x\n", "variable Build.BuildId is predefined and read-only"),
    ("variables:\n  - group: nowhere\nsteps:\n  - bash: x\n", "variable group 'nowhere' is not defined"),
    ("parameters:\n  - {name: p, type: number}\nsteps:\n  - bash: x\n", "parameter 'p' is required"),
])
def test_a_run_that_cannot_start_fails_with_the_reason(project, text, reason):
    store = service.open_store(project)
    run_id = service.queue(project, store, pipeline(project, text), "Manual")
    store.set_record(run_id, "left", "step", status="pending", display="left")
    store.set_record(run_id, "busy", "job", status="running", display="busy")
    store.set_record(run_id, "done", "step", status="completed", result="Succeeded", display="done")
    with pytest.raises(service.CIError) as caught:
        service.execute(project, store, run_id)
    assert str(caught.value).startswith(f"run {run_id} (pipe): ") and reason in str(caught.value)
    run = store.get_run(run_id)
    assert (run.status, run.result) == ("completed", "failed") and run.finished
    records = {r["path"]: r for r in store.records(run_id)}
    compile_record = records["__compile"]
    assert (compile_record["kind"], compile_record["name"], compile_record["display"], compile_record["status"],
            compile_record["result"]) == ("error", "compile", "compile", "completed", "Failed")
    assert compile_record["detail"] == str(caught.value)[len(f"run {run_id} (pipe): "):]
    for path in ("left", "busy"):
        assert (records[path]["status"], records[path]["result"], records[path]["finished"]) == \
            ("completed", "Failed", run.finished)
    assert records["done"]["result"] == "Succeeded" and not records["done"]["finished"]


def test_a_long_reason_is_kept_to_4000_characters(project):
    store = service.open_store(project)
    run_id = service.queue(project, store, pipeline(project, ECHO), "Manual")
    service._fail(store, run_id, "x" * 5000)
    assert store.records(run_id)[0]["detail"] == "x" * 4000


@pytest.mark.parametrize("error, kind", [(RecursionError("deep"), "RecursionError"), (MemoryError(), "MemoryError")])
def test_a_pipeline_too_large_for_the_interpreter_still_ends_failed(project, monkeypatch, error, kind):
    def explode(*args, **kwargs):
        raise error

    monkeypatch.setattr(service.Compiler, "compile", explode)
    store = service.open_store(project)
    run_id = service.queue(project, store, pipeline(project, ECHO), "Manual")
    with pytest.raises(service.CIError) as caught:
        service.execute(project, store, run_id)
    assert str(caught.value) == f"run {run_id} (pipe): the pipeline is too large or too deeply nested ({kind})"
    assert store.get_run(run_id).result == "failed"
    assert store.records(run_id)[0]["detail"] == f"{kind}: the pipeline is too large or too deeply nested"


def test_an_internal_error_ends_the_run_failed_and_is_raised(project, monkeypatch):
    def bug(*args, **kwargs):
        raise KeyError("oops")

    monkeypatch.setattr(service.Compiler, "compile", bug)
    store = service.open_store(project)
    run_id = service.queue(project, store, pipeline(project, ECHO), "Manual")
    with pytest.raises(KeyError):
        service.execute(project, store, run_id)
    assert store.get_run(run_id).result == "failed"
    assert store.records(run_id)[0]["detail"] == "internal error: KeyError: 'oops'"


def test_an_interrupted_run_ends_canceled(project, monkeypatch):
    def interrupted(engine):
        engine.store.set_record(engine.run_id, "s/running", "step", status="running", display="running")
        engine.store.set_record(engine.run_id, "s/pending", "step", status="pending", display="pending")
        engine.store.set_record(engine.run_id, "s/done", "step", status="completed", result="Succeeded")
        raise KeyboardInterrupt

    monkeypatch.setattr(service.Engine, "run", interrupted)
    store = service.open_store(project)
    run_id = service.queue(project, store, pipeline(project, ECHO), "Manual")
    assert service.execute(project, store, run_id) == [run_id]
    run = store.get_run(run_id)
    assert (run.status, run.result) == ("completed", "canceled") and run.finished
    results = {r["path"]: (r["status"], r["result"], r["kind"]) for r in store.records(run_id)}
    assert results == {"s/running": ("completed", "Canceled", "step"), "s/pending": ("completed", "Canceled", "step"),
                       "s/done": ("completed", "Succeeded", "step")}


APPROVAL = ("stages:\n  - stage: Build\n    jobs:\n      - job: Make\n        steps:\n          - bash: echo made\n"
            "  - stage: Deploy\n    jobs:\n      - deployment: Ship\n        environment: %s\n        strategy:\n"
            "          runOnce:\n            deploy:\n              steps:\n                - bash: echo shipped\n")


def test_a_run_that_reaches_an_approval_waits_and_supersedes_older_waiting_runs(project):
    store, first, ran = run_text(project, APPROVAL % "production", "deploy.yml")
    assert ran == [first.id] and (first.status, first.result, first.finished) == ("waiting", "", 0)
    assert [(a["stage"], a["environment"], a["status"]) for a in store.approvals(first.id)] == \
        [("Deploy", "production", "pending")]
    _, second, _ = run_text(project, APPROVAL % "production", "deploy.yml")
    assert (store.get_run(first.id).status, store.get_run(first.id).result) == ("completed", "canceled")
    assert store.get_run(second.id).status == "waiting"
    _, open_run, _ = run_text(project, APPROVAL % "open", "deploy.yml")  # no approval check: it runs through
    assert open_run.result == "succeeded" and store.get_run(second.id).status == "waiting"


def test_an_approved_run_resumes_where_it_waited(project):
    store, run, _ = run_text(project, APPROVAL % "staging", "deploy.yml")
    assert run.status == "waiting" and run.started
    approvals.decide(project, store, run.id, True, "go", approver="ada")
    assert service.execute(project, store, run.id) == [run.id]
    done = store.get_run(run.id)
    assert (done.status, done.result, done.started) == ("completed", "succeeded", run.started)  # started once
    assert done.finished >= done.started
    logs = "".join(Path(r["log"]).read_text() for r in store.records(run.id) if r["log"])
    assert logs.count("made") == 1 and "shipped" in logs


def test_a_completed_run_triggers_the_pipelines_that_name_it_as_a_resource(project):
    git(project.root, "init", "-q", "-b", "main")
    git(project.root, "-c", "user.email=a@b", "-c", "user.name=a", "commit", "-q", "--allow-empty", "-m", "one")
    commit = git(project.root, "rev-parse", "HEAD")
    folder = project.root / ".pipelines"
    folder.mkdir()
    (folder / "up.yml").write_text(ECHO)
    (folder / "down.yml").write_text("resources:\n  pipelines:\n    - not a mapping\n    - pipeline: other\n"
                                     "      source: elsewhere\n      trigger: true\n    - pipeline: source\n"
                                     "      source: up\n      trigger: true\nsteps:\n"
                                     "  - bash: echo \"after $(resources.pipeline.source.runID)\"\n"
                                     "    displayName: down\n")
    (folder / "off.yml").write_text("resources:\n  pipelines:\n    - {pipeline: s, source: up, trigger: false}\n"
                                    "steps:\n  - bash: x\n")
    (folder / "broken.yml").write_text("resources: [unclosed\n")
    (folder / "a-list.yml").write_text("- not a mapping\n")  # sorted before down.yml, as broken.yml is
    (folder / "bare.yml").write_text("steps:\n  - bash: x\n")
    (folder / "repos.yml").write_text("resources:\n  repositories: []\n  pipelines:\nsteps:\n  - bash: x\n")
    (folder / "empty.yml").write_text("")
    (folder / "last.yml").write_text("resources:\n  pipelines:\n    - {pipeline: s, source: down, trigger: true}\n"
                                     "steps:\n  - bash: echo last\n")  # a chain goes on: up -> down -> last
    reports = []
    store = service.open_store(project)
    up = service.queue(project, store, folder / "up.yml", "Manual")
    ran = service.execute(project, store, up, lambda path, fields: reports.append((path, fields)))
    assert len(ran) == 3 and ran[0] == up
    down, last = store.get_run(ran[1]), store.get_run(ran[2])
    assert (last.pipeline, last.triggered_by, last.result) == ("last", down.id, "succeeded")
    assert (down.pipeline, down.reason, down.triggered_by, down.result) == ("down", "ResourceTrigger", up, "succeeded")
    assert (down.branch, down.commit_sha, down.source_dir) == ("main", commit, str(project.root))
    assert down.resources["source"].items() >= {"runID": up, "runName": f"up #{up}", "pipelineName": "up",
                                                "sourceBranch": "refs/heads/main", "sourceCommit": commit}.items()
    assert set(down.resources) == {"source"}  # and pipelineID, projectID, runURI ... (issue 23)
    assert (f"run:{down.id}", {"kind": "run", "status": "header",
                               "display": f"run {down.id}: down (ResourceTrigger, after run {up})"}) in reports
    log = Path(next(r for r in store.records(down.id) if r["display"] == "down")["log"]).read_text()
    assert f"after {up}" in log
    assert len(store.list_runs()) == 3
    alone = service.queue(project, store, folder / "up.yml", "Manual")
    assert service.execute(project, store, alone, chain=False) == [alone] and len(store.list_runs()) == 4
    assert service.completion_triggers(project, store, alone) == [alone + 1]


def test_completion_triggers_read_the_source_runs_result_and_stages(project, tmp_path):
    checkout = tmp_path / "checkout"
    folder = checkout / ".pipelines"
    folder.mkdir(parents=True)
    (folder / "up.yml").write_text(ECHO)
    (folder / "any.yml").write_text("resources:\n  pipelines:\n    - {pipeline: s, source: up, trigger: true}\n"
                                    "steps:\n  - bash: x\n")
    (folder / "staged.yml").write_text("resources:\n  pipelines:\n    - pipeline: s\n      source: up\n"
                                       "      trigger: {stages: [Build]}\nsteps:\n  - bash: x\n")
    (folder / "release-only.yml").write_text("resources:\n  pipelines:\n    - pipeline: s\n      source: up\n"
                                             "      trigger: {branches: {include: [release/*]}}\nsteps:\n  - bash: x\n")
    store = service.open_store(project)
    source = service.queue(project, store, folder / "up.yml", "Manual", source_dir=checkout, branch="release/1",
                           commit="c0ffee")

    def triggered(result: str, results: dict | None) -> list[str]:
        store.update_run(source, status="completed", result=result, state={"results": results} if results else {})
        runs = [store.get_run(i) for i in service.completion_triggers(project, store, source)]
        assert all((r.branch, r.commit_sha, r.source_dir, r.params) == ("release/1", "c0ffee", str(checkout), {})
                   for r in runs)
        return sorted(r.pipeline for r in runs)

    assert triggered("succeeded", None) == ["any", "release-only"]
    store.update_run(source, branch="main")
    assert sorted(store.get_run(i).pipeline for i in service.completion_triggers(project, store, source)) == ["any"]
    store.update_run(source, branch="release/1")

    assert triggered("succeeded", {"Build": "Succeeded"}) == ["any", "release-only", "staged"]
    assert triggered("succeededWithIssues", {"Build": "SucceededWithIssues"}) == ["any", "release-only", "staged"]
    assert triggered("failed", {"Build": "Succeeded", "Deploy": "Failed"}) == ["staged"]
    assert triggered("failed", {"Build": "Failed"}) == []
    assert triggered("failed", {"Other": "Failed", "Build/Make": "Succeeded"}) == []  # a job is not a stage
    assert triggered("canceled", {}) == []
    assert triggered("rejected", {}) == []


def test_run_results_in_azure_and_local_spelling():
    assert [service._run_result(r) for r in ("Succeeded", "SucceededWithIssues", "Failed", "Canceled", "Skipped")] \
        == ["succeeded", "succeededWithIssues", "failed", "canceled", "skipped"]


# --- decide --------------------------------------------------------------------------------------------------------

def decided(store, run_id):
    fields = ("stage", "status", "approver", "approver_proof", "comment")
    return [tuple(a[k] for k in fields) for a in store.approvals(run_id)]


def test_only_a_pending_approval_is_decided(project):
    store = service.open_store(project)
    run_id = service.queue(project, store, pipeline(project, ECHO), "Manual")
    with pytest.raises(service.CIError) as caught:
        approvals.decide(project, store, run_id, True, "ok", approver="lead@example.com")
    assert str(caught.value) == f"run {run_id} has no pending approval"
    waiting_id = waiting(project, store)
    with pytest.raises(service.CIError) as caught:
        approvals.decide(project, store, waiting_id, True, "ok", "Build", approver="lead@example.com")
    assert str(caught.value) == f"run {waiting_id} has no pending approval in stage Build"
    assert decided(store, waiting_id) == [("Deploy", "pending", None, None, None)]


def test_a_stage_selects_which_approval_is_decided(project):
    store = service.open_store(project)
    run_id = waiting(project, store, "staging", "First")
    store.request_approval(run_id, "Second", "Ship", "production", 3600)
    got = approvals.decide(project, store, run_id, True, "second first", "Second", approver="Boss@example.com")
    assert (got["stage"], got["environment"], got["approver"], got["proof"]) == \
        ("Second", "production", "Boss@example.com", "session")
    assert decided(store, run_id) == [("First", "pending", None, None, None),
                                      ("Second", "approved", "Boss@example.com", "session", "second first")]
    got = approvals.decide(project, store, run_id, True, "then this")  # no stage: the first pending one
    assert (got["stage"], got["approver"], got["proof"]) == ("First", "dev@example.com", "claimed")


def test_an_approver_decides_with_a_session_and_names_compare_without_case(project):
    store = service.open_store(project)
    run_id = waiting(project, store)
    got = approvals.decide(project, store, run_id, True, "ship it", approver="LEAD@example.com")
    assert {k: got[k] for k in ("run_id", "stage", "environment", "status", "approver", "proof")} == {
        "run_id": run_id, "stage": "Deploy", "environment": "production", "status": "pending",
        "approver": "LEAD@example.com", "proof": "session"}
    assert decided(store, run_id) == [("Deploy", "approved", "LEAD@example.com", "session", "ship it")]
    assert store.get_run(run_id).status == "waiting"  # approved: the run resumes when executed again
    assert store.records(run_id)[0]["status"] == "waiting"


def test_approver_names_compare_by_the_platforms_one_rule_for_names(project):
    """ml_service/identity.py: a full-width or case-folded spelling is the listed approver, as the Studio matches
    its accounts (the engine's str.lower() took `ＬＥＡＤ@example.com` for a stranger)."""
    store = service.open_store(project)
    run_id = waiting(project, store)
    got = approvals.decide(project, store, run_id, True, "ship it", approver="ＬＥＡＤ@example.com")
    assert decided(store, run_id) == [("Deploy", "approved", got["approver"], "session", "ship it")]


def test_a_stranger_is_refused_and_nothing_is_decided(project, monkeypatch):
    store = service.open_store(project)
    run_id = waiting(project, store)
    with pytest.raises(service.CIError) as caught:
        approvals.decide(project, store, run_id, False, "no", approver="intruder@example.com")
    assert str(caught.value) == f"intruder@example.com is not an approver of {LISTED}"
    account = ident.os_account()
    with pytest.raises(service.CIError) as caught:
        approvals.decide(project, store, run_id, True, "mine")
    assert str(caught.value) == (
        f"dev@example.com is not an approver of {LISTED}: MLOPS_USER and git user.email are claims, not proof "
        f"(proven here: {account} (os-account)). Prove an approver's identity: MLOPS_TOKEN=<the token "
        "`mlops ci token create --name NAME` printed>, run as that OS account, or decide in the studio")
    lead = as_user(monkeypatch, "Lead@Example.com")
    with pytest.raises(service.CIError) as caught:
        approvals.decide(lead, store, run_id, True, "claimed")
    assert str(caught.value).startswith(f"Lead@Example.com is an approver of {LISTED} only by claim: MLOPS_USER")
    prove(monkeypatch, lead, "someone-else")
    with pytest.raises(service.CIError) as caught:
        approvals.decide(lead, store, run_id, True, "claimed")
    assert f"(proven here: someone-else (token), {account} (os-account))" in str(caught.value)
    monkeypatch.setenv("MLOPS_TOKEN", "mlops_forged")
    with pytest.raises(service.CIError) as caught:
        approvals.decide(lead, store, run_id, True, "forged")
    assert str(caught.value) == "MLOPS_TOKEN is not a token of this workspace (mlops ci token create makes one)"
    assert decided(store, run_id) == [("Deploy", "pending", None, None, None)]
    assert store.get_run(run_id).status == "waiting"


def test_a_token_or_the_os_account_proves_an_approver(project, monkeypatch):
    store = service.open_store(project)
    first = waiting(project, store)
    prove(monkeypatch, project, "boss@example.com")
    got = approvals.decide(project, store, first, True, "by token")
    assert (got["approver"], got["proof"]) == ("boss@example.com", "token")
    monkeypatch.delenv("MLOPS_TOKEN")
    account = ident.os_account()
    (project.root / "mlops.yml").write_text(MLOPS_YML.replace("approvers: [lead@example.com]",
                                                              f"approvers: [{account.upper()}]"))
    settings = load_settings()
    second = waiting(settings, store, "selfok")
    got = approvals.decide(settings, store, second, True, "by account")
    assert (got["approver"], got["proof"]) == (account, "os-account")


def test_without_approvers_anyone_decides_under_their_best_identity(project, monkeypatch):
    store = service.open_store(project)
    first, second, third = (waiting(project, store, "staging", stage) for stage in ("A", "B", "C"))
    got = approvals.decide(project, store, first, True, "claimed")
    assert (got["approver"], got["proof"]) == ("dev@example.com", "claimed")
    got = approvals.decide(project, store, second, True, "session", approver="ada")
    assert (got["approver"], got["proof"]) == ("ada", "session")
    prove(monkeypatch, project, "tok")
    got = approvals.decide(project, store, third, False, "token")
    assert (got["approver"], got["proof"]) == ("tok", "token")
    assert decided(store, third) == [("C", "rejected", "tok", "token", "token")]


def test_the_requester_may_not_approve_when_self_approval_is_off(project, monkeypatch):
    lead = as_user(monkeypatch, "lead@example.com")
    store = service.open_store(lead)
    run_id = waiting(lead, store)
    with pytest.raises(service.CIError) as caught:
        approvals.decide(lead, store, run_id, True, "self", approver="LEAD@example.com")
    assert str(caught.value) == \
        f"LEAD@example.com requested run {run_id} and may not approve it (allow_self_approval is false)"
    assert decided(store, run_id) == [("Deploy", "pending", None, None, None)]
    got = approvals.decide(lead, store, run_id, False, "withdrawn", approver="lead@example.com")  # rejecting is fine
    assert got["approver"] == "lead@example.com" and store.get_run(run_id).result == "rejected"
    other = waiting(lead, store)
    got = approvals.decide(lead, store, other, True, "another approver", approver="boss@example.com")
    assert got["approver"] == "boss@example.com"


def test_a_requester_proven_by_token_may_not_approve_under_another_claimed_name(project, monkeypatch):
    prove(monkeypatch, project, "Boss@Example.com")
    store = service.open_store(project)
    run_id = waiting(project, store)  # requested_by dev@example.com, proven as Boss@Example.com
    with pytest.raises(service.CIError, match="may not approve it"):
        approvals.decide(project, store, run_id, True, "self", approver="boss@example.com")
    monkeypatch.delenv("MLOPS_TOKEN")
    account = ident.os_account()
    store.update_run(run_id, requested_proof=f"os-account:{account}")
    got = approvals.decide(project, store, run_id, True, "fine now", approver="boss@example.com")
    assert got["approver"] == "boss@example.com"


def test_self_approval_is_allowed_unless_switched_off(project, monkeypatch):
    lead = as_user(monkeypatch, "lead@example.com")
    store = service.open_store(lead)
    run_id = waiting(lead, store, "selfok")
    got = approvals.decide(lead, store, run_id, True, "self", approver="lead@example.com")
    assert (got["approver"], got["status"]) == ("lead@example.com", "pending")
    assert decided(store, run_id)[0][1] == "approved"


def test_a_rejection_ends_the_run_and_fails_what_waits(project):
    store = service.open_store(project)
    run_id = waiting(project, store)
    before = time.time()
    approvals.decide(project, store, run_id, False, "not today", approver="lead@example.com")
    run = store.get_run(run_id)
    assert (run.status, run.result) == ("completed", "rejected") and run.finished >= before
    records = {r["path"]: r for r in store.records(run_id)}
    ship, make = records["Deploy/Ship"], records["Deploy/Make"]
    assert (ship["status"], ship["result"], ship["detail"], ship["kind"]) == \
        ("completed", "Failed", "rejected by lead@example.com: not today", "job")
    assert ship["finished"] == run.finished
    assert (make["status"], make["result"], make["detail"], make["finished"]) == \
        ("completed", "Succeeded", None, None)
    assert decided(store, run_id) == [("Deploy", "rejected", "lead@example.com", "session", "not today")]


def test_one_decision_wins_when_two_are_taken_at_once(project):
    class Racing(Store):
        """Another approver decides between this decision's read and its write."""

        def decide(self, approval_id, status, approver, comment, proof=""):
            super().decide(approval_id, "rejected", "quicker@example.com", "first", "session")
            return super().decide(approval_id, status, approver, comment, proof)

    store = service.open_store(project)
    run_id = waiting(project, store)
    racing = Racing(store.directory)
    with pytest.raises(service.CIError) as caught:
        approvals.decide(project, racing, run_id, False, "second", approver="lead@example.com")
    assert str(caught.value) == f"run {run_id}: the approval of stage Deploy was decided meanwhile"
    assert decided(store, run_id) == [("Deploy", "rejected", "quicker@example.com", "session", "first")]
    assert store.get_run(run_id).status == "waiting"  # the loser changed nothing
    assert store.records(run_id)[0]["status"] == "waiting"


def test_an_expired_approval_times_out_when_the_store_is_opened(project):
    store = service.open_store(project)
    run_id = waiting(project, store)
    kept = waiting(project, store, "staging", "Other")
    approval = store.approvals(run_id, "pending")[0]
    with store._db() as db:
        db.execute("UPDATE approvals SET timeout_at = ? WHERE id = ?", (time.time() - 1, approval["id"]))
    service.open_store(project)
    run = store.get_run(run_id)
    assert (run.status, run.result) == ("completed", "rejected")
    assert decided(store, run_id) == [("Deploy", "timed out", "", "", "approval timed out")]
    assert store.get_run(kept).status == "waiting"
    with pytest.raises(service.CIError, match="has no pending approval"):
        approvals.decide(project, store, run_id, True, "too late", approver="lead@example.com")


# --- supersede and cancel ------------------------------------------------------------------------------------------

def test_a_newer_waiting_run_supersedes_only_older_waiting_runs_of_its_pipeline(project):
    store = service.open_store(project)
    old1, old2 = waiting(project, store, "staging"), waiting(project, store, "staging")
    done = service.queue(project, store, pipeline(project, ECHO), "Manual")
    store.update_run(done, status="completed", result="succeeded")
    other = service.queue(project, store, pipeline(project, ECHO, "other.yml"), "Manual")
    store.update_run(other, status="waiting")
    current = waiting(project, store, "staging")
    store.update_run(current, state={"summaries": ["earlier note"]})
    newer = waiting(project, store, "staging")
    store.request_approval(other, "Deploy", "Ship", "staging", 3600)
    assert approvals.supersede_older(store, current) == [old2, old1]
    for untouched in (current, newer, other):
        assert decided(store, untouched) == [("Deploy", "pending", None, None, None)]
    for old in (old1, old2):
        run = store.get_run(old)
        assert (run.status, run.result) == ("completed", "canceled") and run.finished
        assert decided(store, old) == [("Deploy", "rejected", "", "", f"superseded by run {current}")]
    assert store.get_run(current).state["summaries"] == [
        "earlier note", f"superseded: run(s) {old2}, {old1} of pipe no longer wait for approval (this newer run does)"]
    assert store.get_run(done).result == "succeeded" and store.get_run(other).status == "waiting"
    assert store.get_run(newer).status == "waiting" and store.get_run(current).status == "waiting"
    assert approvals.supersede_older(store, newer) == [current]
    assert approvals.supersede_older(store, other) == []
    assert set(store.get_run(other).state) == {"checkout"}  # what its sources are, and no summary


def test_cancel_a_waiting_or_queued_run(project):
    store = service.open_store(project)
    other = waiting(project, store, "staging")
    run_id = waiting(project, store)
    assert service.cancel(store, run_id) == "canceled"
    run = store.get_run(run_id)
    assert (run.status, run.result) == ("completed", "canceled") and run.finished
    assert decided(store, run_id) == [("Deploy", "rejected", "", "", "run canceled")]
    assert decided(store, other) == [("Deploy", "pending", None, None, None)]  # another run's approval waits on
    with pytest.raises(service.CIError) as caught:
        service.cancel(store, run_id)
    assert str(caught.value) == f"run {run_id} has already completed (canceled)"
    queued = service.queue(project, store, pipeline(project, ECHO), "Manual")
    assert service.cancel(store, queued) == "canceled" and store.get_run(queued).result == "canceled"


def test_cancel_a_running_run_signals_its_engine_process(project):
    store = service.open_store(project)
    run_id = service.queue(project, store, pipeline(project, ECHO), "Manual")
    engine = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        store.update_run(run_id, status="running", pid=engine.pid)
        assert service.cancel(store, run_id) == "cancel requested"
        assert engine.wait(timeout=30) == -15  # SIGTERM: the engine ends the run itself
        assert store.get_run(run_id).status == "running"
    finally:
        engine.kill()
        engine.wait()
    assert service.cancel(store, run_id) == "canceled"  # its process is gone: canceled here
    assert store.get_run(run_id).result == "canceled"
    without_pid = service.queue(project, store, pipeline(project, ECHO), "Manual")
    store.update_run(without_pid, status="running", pid=0)
    assert service.cancel(store, without_pid) == "canceled"


# --- approvals of a running pipeline (issue 29) ----------------------------------------------------------------------

TWO_GATES = ("stages:\n  - stage: Build\n    jobs:\n      - job: Make\n        steps:\n          - bash: echo made\n"
             "  - stage: QA\n    jobs:\n      - deployment: ToQA\n        environment: staging\n        strategy:\n"
             "          runOnce:\n            deploy:\n              steps:\n                - bash: echo in-qa\n"
             "  - stage: Prod\n    jobs:\n      - deployment: ToProd\n        environment: production\n"
             "        strategy:\n          runOnce:\n            deploy:\n              steps:\n"
             "                - bash: echo in-production\n")


def logs(store, run_id) -> str:
    return "".join(Path(r["log"]).read_text() for r in store.records(run_id) if r["log"])


@pytest.mark.parametrize("environment, minutes", [("production", 60), ("selfok", 1440)])
def test_an_approval_waits_its_timeout_in_minutes(project, environment, minutes):
    """timeout_minutes of the environment's approval (default 1440) is minutes: the deadline is that many times 60
    seconds after the request."""
    store, run, _ = run_text(project, APPROVAL % environment, "deploy.yml")
    approval = store.approvals(run.id)[0]
    assert approval["timeout_at"] - approval["requested"] == pytest.approx(minutes * 60, abs=0.01)


def test_each_gated_stage_waits_for_its_own_approval(project):
    """Approving QA resumes the run into QA only: production asks again, and a rejection there ends the run."""
    store, run, _ = run_text(project, TWO_GATES, "gates.yml")
    assert [(a["stage"], a["status"]) for a in store.approvals(run.id)] == [("QA", "pending")]
    approvals.decide(project, store, run.id, True, "qa ok", approver="ada")
    service.execute(project, store, run.id)
    assert store.get_run(run.id).status == "waiting"
    assert [(a["stage"], a["status"]) for a in store.approvals(run.id)] == [("QA", "approved"), ("Prod", "pending")]
    assert "in-qa" in logs(store, run.id) and "in-production" not in logs(store, run.id)
    approvals.decide(project, store, run.id, False, "not prod", approver="lead@example.com")
    with pytest.raises(service.CIError) as caught:  # a rejected run stays ended
        service.execute(project, store, run.id)
    assert str(caught.value) == (f"run {run.id} (gates) is completed (rejected): only a queued run, or one "
                                 "waiting for approval, can run")
    done = store.get_run(run.id)
    assert (done.status, done.result) == ("completed", "rejected")
    assert "in-production" not in logs(store, run.id)
    assert logs(store, run.id).count("made") == 1 and logs(store, run.id).count("in-qa") == 1


def test_a_decision_applies_to_the_run_it_names_and_no_other(project):
    store = service.open_store(project)
    older = waiting(project, store, "staging")
    other_pipeline = service.queue(project, store, pipeline(project, ECHO, "other.yml"), "Manual", {})
    store.update_run(other_pipeline, status="waiting")
    store.request_approval(other_pipeline, "Deploy", "Ship", "staging", 3600)
    approvals.decide(project, store, other_pipeline, False, "no", approver="ada")
    assert decided(store, older) == [("Deploy", "pending", None, None, None)]
    assert store.get_run(older).status == "waiting"
    assert (store.get_run(other_pipeline).status, store.get_run(other_pipeline).result) == ("completed", "rejected")
    approvals.decide(project, store, older, True, "yes", approver="ada")
    assert decided(store, older) == [("Deploy", "approved", "ada", "session", "yes")]


def test_an_approved_run_resumes_with_its_earlier_outputs_and_runs_nothing_twice(project):
    text = ("stages:\n  - stage: Build\n    jobs:\n      - job: Make\n        steps:\n"
            "          - bash: echo \"##vso[task.setvariable variable=v;isOutput=true]7\"; echo built\n"
            "            name: make\n  - stage: Deploy\n    jobs:\n      - deployment: Ship\n"
            "        environment: staging\n        variables:\n"
            "          v: $[ stageDependencies.Build.Make.outputs['make.v'] ]\n        strategy:\n"
            "          runOnce:\n            deploy:\n              steps:\n"
            "                - bash: echo \"ship $(v)\"\n")
    store, run, _ = run_text(project, text, "resume.yml")
    approvals.decide(project, store, run.id, True, "go", approver="ada")
    service.execute(project, store, run.id)
    assert store.get_run(run.id).result == "succeeded"
    assert logs(store, run.id).count("built") == 1 and "ship 7" in logs(store, run.id)


@pytest.mark.parametrize("end", ["cancel", "reject"])
def test_a_run_canceled_or_rejected_after_its_approval_never_resumes(project, end):
    """Approve, then cancel (or the run is ended some other way) before the resuming process starts: that
    process must not deploy what was canceled (issue 29: execute used to run any run it was given)."""
    store, run, _ = run_text(project, APPROVAL % "staging", "deploy.yml")
    if end == "cancel":
        approvals.decide(project, store, run.id, True, "go", approver="ada")
        service.cancel(store, run.id)
    else:
        approvals.decide(project, store, run.id, False, "no", approver="ada")
    with pytest.raises(service.CIError, match="only a queued run, or one waiting for approval, can run"):
        service.execute(project, store, run.id)
    assert store.get_run(run.id).status == "completed"
    assert store.get_run(run.id).result == ("canceled" if end == "cancel" else "rejected")
    assert "shipped" not in logs(store, run.id)


def test_a_run_already_running_elsewhere_is_not_run_twice(project):
    store = service.open_store(project)
    run_id = service.queue(project, store, pipeline(project, ECHO), "Manual")
    assert store.start_run(run_id, os.getpid(), owner_tag(), time.time())
    assert not store.start_run(run_id, os.getpid(), owner_tag(), time.time())
    with pytest.raises(service.CIError, match=f"run {run_id} \\(pipe\\) is running"):
        service.execute(project, store, run_id)
    assert store.records(run_id) == []


def test_the_latest_run_of_a_pipeline_is_of_the_branch_asked_for(project):
    """resources.pipelines with a branch: the newest succeeded run of that branch, not a newer one of another."""
    store = Store(project.state_dir / "ci")

    def completed(branch: str, result: str = "succeeded") -> int:
        run_id = store.create_run("build", "build.yml", "Manual", branch, "c0ffee", "dev", {}, "/src")
        store.update_run(run_id, status="completed", result=result)
        return run_id

    main_run = completed("main")
    completed("feature")
    completed("main", "failed")
    assert service.latest_run(project, store, "build", "refs/heads/main").id == main_run
    assert service.latest_run(project, store, "build", "main").id == main_run
    assert service.latest_run(project, store, "build", "release") is None
