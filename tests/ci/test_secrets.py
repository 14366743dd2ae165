"""Secrets: masked in every form a tool prints them in, never stored in runs.db, scripts or snapshots,
resolved again when a run resumes after an approval; an unused group's missing secret fails nothing."""
from __future__ import annotations

import base64
import json
import stat
import subprocess
import textwrap
import urllib.parse
import zipfile
from pathlib import Path

import pytest

from ml_service.ci.server import approvals, service
from ml_service.config import load_settings
from ml_service.workspace.snapshot import write_snapshot
from tests.ci.helpers import every_stored_byte, make_project, run_text

MULTILINE = 'line-one "quoted" & <tag> /p?q=1+2\nline-two-9f8e7d'  # from a group, reaches steps via env:
SIMPLE = "group-simple-5c4b3a2918"  # from a group, spliced as $(SIMPLE_SECRET) and set as a secret output
RUNTIME = "runtime-token-77aa66bb55"  # set at run time with issecret=true, used after the approval resume

MLOPS_YML = """
models:
  - {project: p, name: m}
environments:
  production:
    approval: {approvers: [], timeout_minutes: 60}
ci:
  variable_groups:
    vault:
      secrets: [MULTI_SECRET, SIMPLE_SECRET]
    unused:
      secrets: [NEVER_SET_SECRET]
"""

PRINT_FORMS = """\
python3 - <<'PY'
import base64, json, os, urllib.parse
s = os.environ["S"]
b = s.encode()
print("plain:", s)
for prefix in (b"", b"x", b"user:", b"Basic u:"):
    print("b64:", base64.b64encode(prefix + b).decode(), base64.urlsafe_b64encode(prefix + b).decode())
print("json:", json.dumps({"secret": s}))
print("url:", urllib.parse.quote(s, safe=""), urllib.parse.quote_plus(s))
print("hex:", b.hex(), b.hex().upper())
print("xml:", s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;"))
print("cmd:", s.replace('"', '\\\\"'))
PY
"""

PIPELINE = f"""\
variables:
  - group: vault
stages:
  - stage: Build
    jobs:
      - job: Make
        steps:
          - bash: |
{textwrap.indent(PRINT_FORMS, ' ' * 14).rstrip()}
            env: {{S: $(MULTI_SECRET)}}
            displayName: group secret forms
          - bash: |
              echo "spliced $(SIMPLE_SECRET) script mode $(stat -c %a "$0")"
              echo "##vso[task.setvariable variable=token;isOutput=true;issecret=true]$RUNTIME_SOURCE"
              echo "##vso[task.setvariable variable=fromGroup;isOutput=true;issecret=true]$(SIMPLE_SECRET)"
            name: make
            displayName: set secret outputs
  - stage: Deploy
    jobs:
      - deployment: Ship
        environment: production
        variables:
          token: $[ stageDependencies.Build.Make.outputs['make.token'] ]
          fromGroup: $[ stageDependencies.Build.Make.outputs['make.fromGroup'] ]
        strategy:
          runOnce:
            deploy:
              steps:
                - bash: |
{textwrap.indent(PRINT_FORMS, ' ' * 20).rstrip()}
                    echo "from group after resume: $(fromGroup) token: $(token)"
                    echo "exported? [${{TOKEN:-absent}}]"
                    echo "token length ${{#S}}"
                    ls "$(Agent.TempDirectory)"
                    env
                    set
                    echo "token: $S" | base64
                    printf '%s' "$S" | base64
                    printf '%s' "$S" | xxd -p || true
                    echo "##vso[task.setvariable variable=again;isOutput=true]$S"
                    echo "##vso[task.logissue type=warning]token was $S"
                    cat "$0"
                    exit 0
                  env: {{S: $(token)}}
                  name: use
                  displayName: use the secret output after the resume
"""


def forms(secret: str) -> set[str]:
    """The printed forms of secret, computed here (not by the masker under test)."""
    data = secret.encode()
    found = {secret, json.dumps(secret)[1:-1], urllib.parse.quote(secret, safe=""), urllib.parse.quote_plus(secret),
             data.hex(), data.hex().upper(), *[line for line in secret.splitlines() if line]}
    for prefix in (b"", b"x", b"user:", b"Basic u:"):
        found.add(base64.b64encode(prefix + data).decode())
        found.add(base64.urlsafe_b64encode(prefix + data).decode())
    return found


@pytest.fixture
def project(tmp_path, monkeypatch):
    (tmp_path / "mlops.yml").write_text(MLOPS_YML)
    monkeypatch.setenv("MLOPS_ROOT", str(tmp_path))
    monkeypatch.setenv("MLOPS_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("MLOPS_USER", "dev@example.com")
    monkeypatch.setenv("MULTI_SECRET", MULTILINE)
    monkeypatch.setenv("SIMPLE_SECRET", SIMPLE)
    monkeypatch.setenv("RUNTIME_SOURCE", RUNTIME)
    monkeypatch.delenv("NEVER_SET_SECRET", raising=False)
    monkeypatch.delenv("MLOPS_MODEL", raising=False)
    return load_settings()


def everything_stored(state: Path) -> str:
    """Every byte under the state folder (runs.db and its WAL, logs, work folders, secrets), as text."""
    return "".join(p.read_bytes().decode(errors="replace") for p in state.rglob("*") if p.is_file())


def leaks(text: str) -> list[str]:
    found = []
    for secret in (MULTILINE, SIMPLE, RUNTIME):
        found += [form for form in forms(secret) if form in text]
    return found


def test_secrets_are_masked_in_every_form_and_never_stored_across_an_approval(project, tmp_path):
    pipeline = tmp_path / "flow.yml"
    pipeline.write_text(PIPELINE)
    store = service.open_store(project)
    run_id = service.queue(project, store, pipeline, "Manual")
    service.execute(project, store, run_id)
    assert store.get_run(run_id).status == "waiting"
    vault = store.directory / "secrets" / f"{run_id}.json"
    assert stat.S_IMODE(vault.stat().st_mode) == 0o600
    outputs = store.get_run(run_id).state["outputs"]
    assert outputs["Build/Make.make.token"] == {"secret": "vault"}  # a reference, not the value
    assert outputs["Build/Make.make.fromGroup"] == {"secret": "group:vault/SIMPLE_SECRET"}
    stored = "".join(p.read_bytes().decode(errors="replace") for p in store.directory.rglob("*")
                     if p.is_file() and p != vault)
    assert not leaks(stored)

    approvals.decide(project, store, run_id, True, "ship it")
    service.execute(project, store, run_id)  # a new engine: the outputs are resolved again
    run = store.get_run(run_id)
    assert (run.status, run.result) == ("completed", "succeeded"), store.records(run_id)
    logs = "".join(Path(r["log"]).read_text() for r in store.records(run_id) if r["log"])
    assert "script mode 600" in logs and "spliced ***" in logs
    assert "from group after resume: *** token: ***" in logs and "exported? [absent]" in logs
    assert f"token length {len(RUNTIME)}" in logs  # the secret reached the step, resolved after the resume
    assert "b64:" in logs and "hex:" in logs and "json:" in logs
    assert not leaks(everything_stored(project.state_dir)), leaks(everything_stored(project.state_dir))
    assert not vault.exists()  # the run completed: its secret outputs are gone
    assert not list((store.work_dir(run_id) / "_temp").glob("step-*.sh"))  # scripts deleted when steps end


def test_a_missing_secret_of_a_group_the_pipeline_does_not_use_fails_nothing(project, tmp_path):
    pipeline = tmp_path / "plain.yml"
    pipeline.write_text("steps:\n  - bash: echo fine\n")
    store = service.open_store(project)
    run_id = service.queue(project, store, pipeline, "Manual")
    service.execute(project, store, run_id)
    assert store.get_run(run_id).result == "succeeded"
    uses = tmp_path / "uses.yml"
    uses.write_text("variables:\n  - group: unused\nsteps:\n  - bash: echo never\n")
    with pytest.raises(service.CIError, match="secret NEVER_SET_SECRET is not set"):
        service.execute(project, store, service.queue(project, store, uses, "Manual"))


def git(cwd, *args):
    subprocess.run(["git", "-c", "user.email=t@example.invalid", "-c", "user.name=t", *args], cwd=cwd, check=True,
                   capture_output=True)


def test_a_snapshot_holds_nothing_git_ignores_and_never_a_dot_env(tmp_path):
    root = tmp_path / "repo"
    (root / "sub").mkdir(parents=True)
    (root / "secrets").mkdir()
    (root / "code.py").write_text("x = 1\n")
    (root / ".env").write_text(f"SIMPLE_SECRET={SIMPLE}\n")
    (root / ".env.local").write_text(f"RUNTIME={RUNTIME}\n")
    (root / "secrets" / "key.txt").write_text(SIMPLE)
    (root / "sub" / ".gitignore").write_text("local.cfg\n")  # a nested rule
    (root / "sub" / "local.cfg").write_text(RUNTIME)
    (root / "sub" / "kept.py").write_text("y = 2\n")
    (root / ".gitignore").write_text("secrets/\n")
    (root / ".mlopsignore").write_text("*.tmp\n")  # adds a rule; does not switch git's off
    (root / "scratch.tmp").write_text("scratch\n")
    git(root, "init", "-q")
    git(root, "add", "-f", ".env")  # committed by mistake: still never snapshotted
    git(root, "add", ".")
    git(root, "commit", "-qm", "tree")
    dest = tmp_path / "snapshot.zip"
    write_snapshot(root, dest)
    names = sorted(zipfile.ZipFile(dest).namelist())
    assert names == [".gitignore", ".mlopsignore", "code.py", "sub/.gitignore", "sub/kept.py"]
    data = dest.read_bytes()
    assert SIMPLE.encode() not in data and RUNTIME.encode() not in data


RUNTIME_SECRET = "runtime-secret-123"
GROUP_SECRET = "group-secret-456"
TASKS_YML = """
models:
  - {project: p, name: m}
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
      mkdir -p results
      echo '<testsuite><testcase name="a"/><testcase name="b"><failure/></testcase></testsuite>' > results/TEST-one.xml
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


def test_task_output_and_step_details_never_hold_a_secret(tmp_path, monkeypatch):
    """A task's own output, a failed task's detail and a logged issue mask secrets too (issue 19)."""
    project = make_project(tmp_path, monkeypatch, TASKS_YML)
    monkeypatch.setenv("GROUP_SECRET", GROUP_SECRET)
    store, run = run_text(project, MASKED)
    records = {r["display"]: r for r in store.records(run.id)}
    assert records["title with secrets"]["result"] == "Succeeded"
    assert records["failing task"]["result"] == "SucceededWithIssues"  # failed, continueOnError
    assert "***" in records["failing task"]["detail"] and "'fail ***'" in records["failing task"]["detail"]
    assert "***" in records["issue"]["detail"]
    logs = {name: Path(r["log"]).read_text() for name, r in records.items() if r["log"]}
    assert "'run *** and ***'" in logs["title with secrets"]  # the task's output, masked
    stored = every_stored_byte(project.state_dir) + repr(store.records(run.id)) + repr(run.state)
    for secret in (RUNTIME_SECRET, GROUP_SECRET):
        assert secret not in stored
