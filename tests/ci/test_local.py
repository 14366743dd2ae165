"""The local CI engine with real git repositories, real hooks, real processes."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ml_service.ci.model.template import Compiler
from ml_service.ci.server import approvals, service
from ml_service.config import load_settings
from tests.conftest import ROOT

pytestmark = pytest.mark.integration

BUILD = """
trigger:
  branches: {include: [main]}
  paths: {include: [src]}
pr: none
steps:
  - script: |
      while [ -n "$GO_FILE" ] && [ ! -f "$GO_FILE" ]; do sleep 0.1; done
      echo "built $(Build.SourceVersion) of $(Build.SourceBranchName) because $(Build.Reason)"
"""
PR = """
trigger: none
pr:
  branches: {include: [main]}
steps:
  - script: echo "validated a pull request"
"""
SLOW = """
steps:
  - script: echo "started"; sleep 120; echo "never printed"
    displayName: slow
"""


def git(cwd, *args):
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


def mlops(*args, env=None):
    return subprocess.run([sys.executable, "-m", "ml_service.cli", *args], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, **(env or {})}, timeout=600)


@pytest.fixture
def project(tmp_path, monkeypatch):
    (tmp_path / "mlops.yml").write_text("models:\n  - {project: alpha, name: alpha_model}\n"
                                        "  - {project: beta, name: beta_model}\n")
    monkeypatch.setenv("MLOPS_ROOT", str(tmp_path))
    monkeypatch.setenv("MLOPS_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("MLOPS_USER", "dev@example.com")
    monkeypatch.delenv("MLOPS_MODEL", raising=False)  # e.g. set by the pipeline that runs these tests
    return load_settings()


def wait_for_runs(store, count, timeout=90):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = store.list_runs()
        if len(runs) >= count and all(r.status == "completed" for r in runs):
            return runs
        time.sleep(0.3)
    raise AssertionError(f"expected {count} completed runs, have {[(r.id, r.status) for r in store.list_runs()]}")


def test_git_push_runs_matching_pipelines_in_the_background(project, tmp_path):
    from ml_service.ci.server import hooks

    work = tmp_path / "work"
    (work / ".pipelines").mkdir(parents=True)
    (work / ".pipelines" / "build.yml").write_text(BUILD)
    (work / ".pipelines" / "pr.yml").write_text(PR)
    (work / "src").mkdir()
    (work / "src" / "app.py").write_text("x = 1\n")
    git(work, "init", "-q", "-b", "main")
    git(work, "-c", "user.email=t@example.invalid", "-c", "user.name=t", "add", ".")
    git(work, "-c", "user.email=t@example.invalid", "-c", "user.name=t", "commit", "-qm", "first")
    remote = hooks.install(project, tmp_path / "remote.git", work_repo=work)
    assert (remote / "hooks" / "post-receive").stat().st_mode & 0o111

    go = tmp_path / "go"  # the pipeline's step waits for this file, created only after the push returned:
    pushed = subprocess.run(["git", "push", "-q", "mlops", "main"], cwd=work, capture_output=True, text=True,
                            env={**os.environ, "GO_FILE": str(go)}, timeout=120)  # a blocking push would hang
    assert pushed.returncode == 0, pushed.stderr
    assert "queued in the background" in pushed.stderr
    go.write_text("go")
    store = service.open_store(project)
    runs = wait_for_runs(store, 1)
    head = git(work, "rev-parse", "HEAD").strip()
    assert [(r.pipeline, r.reason, r.branch, r.commit_sha) for r in runs] == [("build", "IndividualCI", "main", head)]
    log = Path(store.records(runs[0].id)[-1]["log"]).read_text()
    assert f"built {head} of main because IndividualCI" in log

    # a change outside the path filter queues nothing
    (work / "README.md").write_text("docs\n")
    git(work, "add", ".")
    git(work, "-c", "user.email=t@example.invalid", "-c", "user.name=t", "commit", "-qm", "docs")
    subprocess.run(["git", "push", "-q", "mlops", "main"], cwd=work, check=True, capture_output=True)
    (work / "src" / "app.py").write_text("x = 2\n")
    git(work, "add", ".")
    git(work, "-c", "user.email=t@example.invalid", "-c", "user.name=t", "commit", "-qm", "code")
    subprocess.run(["git", "push", "-q", "mlops", "main"], cwd=work, check=True, capture_output=True)
    runs = wait_for_runs(store, 2)
    assert [r.pipeline for r in runs] == ["build", "build"]
    assert runs[0].commit_sha == git(work, "rev-parse", "HEAD").strip()  # the docs-only push ran nothing

    # a feature branch is validated like a pull request into main
    git(work, "checkout", "-q", "-b", "feature")
    subprocess.run(["git", "push", "-q", "mlops", "feature"], cwd=work, check=True, capture_output=True)
    runs = wait_for_runs(store, 3)
    assert (runs[0].pipeline, runs[0].reason, runs[0].branch) == ("pr", "PullRequest", "feature")
    listing = mlops("ci", "list").stdout
    assert "PullRequest" in listing and "IndividualCI" in listing


def start_slow_run(project, tmp_path):
    """Start the SLOW pipeline as run 1 in its own process; return it once its step has printed 'started'."""
    pipeline = tmp_path / "slow.yml"
    pipeline.write_text(SLOW)
    proc = subprocess.Popen([sys.executable, "-m", "ml_service.cli", "ci", "run", str(pipeline)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    store = service.open_store(project)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        steps = [r for r in store.records(1) if r["kind"] == "step"] if store.list_runs() else []
        if steps and steps[0]["log"] and Path(steps[0]["log"]).exists() and \
                "started" in Path(steps[0]["log"]).read_text():
            return proc, store
        time.sleep(0.2)
    proc.kill()
    raise AssertionError("the run never started its step")


KILLABLE = """
steps:
  - bash: |
      sleep 300 &
      echo $! > "$CHILD_FILE"
      echo $$ > "$SHELL_FILE"
      echo "started"
      wait
      echo "never printed"
    displayName: slow
"""


def gone(pid: int, within: float = 30) -> bool:
    """True once /proc has no such process (polled: the watchdog kills asynchronously)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            return True
        if state == "Z":
            return True
        time.sleep(0.1)
    return False


def test_a_killed_run_takes_its_steps_with_it_and_the_next_start_ends_it_failed(project, tmp_path):
    pipeline = tmp_path / "killable.yml"
    pipeline.write_text(KILLABLE)
    child, shell = tmp_path / "child.pid", tmp_path / "shell.pid"
    proc = subprocess.Popen([sys.executable, "-m", "ml_service.cli", "ci", "run", str(pipeline)], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "CHILD_FILE": str(child), "SHELL_FILE": str(shell)})
    deadline = time.monotonic() + 60
    while not (child.exists() and shell.exists() and child.read_text().strip() and shell.read_text().strip()):
        assert time.monotonic() < deadline and proc.poll() is None, "the step never started"
        time.sleep(0.1)
    pids = [int(child.read_text()), int(shell.read_text())]
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert all(gone(pid) for pid in pids), "a step process outlived its run"
    shown = mlops("ci", "show", "1")  # the next start: the run is ended, with the reason
    assert shown.returncode == 0
    assert "status completed failed" in shown.stdout
    assert f"killed: the engine process that ran it (pid {proc.pid} on" in shown.stdout
    assert "started" in mlops("ci", "logs", "1").stdout  # its logs stay
    other = tmp_path / "quick.yml"
    other.write_text("steps:\n  - script: echo quick\n")
    assert mlops("ci", "run", str(other)).returncode == 0  # the store still works
    assert [r.result for r in service.open_store(project).list_runs()] == ["succeeded", "failed"]


def test_what_a_job_leaves_running_ends_with_the_job(project, tmp_path):
    pipeline = tmp_path / "orphan.yml"
    leftover = tmp_path / "leftover.pid"
    pipeline.write_text(f"""
jobs:
  - job: Leaves
    steps:
      - bash: |
          sleep 300 > /dev/null 2>&1 &
          echo $! > "{leftover}"
  - job: Later
    dependsOn: Leaves
    steps:
      - bash: echo later
""")
    store = service.open_store(project)
    run_id = service.queue(project, store, pipeline, "Manual")
    service.execute(project, store, run_id)
    assert store.get_run(run_id).result == "succeeded"
    assert gone(int(leftover.read_text()))


def test_two_runs_at_once_do_not_corrupt_the_store(project, tmp_path):
    pipeline = tmp_path / "p.yml"
    pipeline.write_text("steps:\n" + "".join(f"  - script: echo step {i}\n" for i in range(8)))
    procs = [subprocess.Popen([sys.executable, "-m", "ml_service.cli", "ci", "run", str(pipeline)], cwd=ROOT,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for _ in range(3)]
    errors = [p.communicate(timeout=120)[1] for p in procs]
    assert all(p.returncode == 0 for p in procs), errors
    store = service.open_store(project)
    runs = store.list_runs()
    assert len(runs) == 3 and all(r.result == "succeeded" for r in runs)
    assert all(len([r for r in store.records(run.id) if r["kind"] == "step"]) == 8 for run in runs)


PIPELINES = sorted((ROOT / ".pipelines").glob("*.yml"))
TEMPLATES = sorted((ROOT / ".pipelines" / "templates").glob("*.yml"))


@pytest.mark.parametrize("path", PIPELINES + TEMPLATES, ids=[str(p.relative_to(ROOT)) for p in PIPELINES + TEMPLATES])
def test_every_pipeline_and_template_validates_against_the_azure_schema(path):
    result = subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.azure-pipelines",
                             "--regex-variant", "nonunicode", "--data-transform", "azure-pipelines", str(path)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("path", PIPELINES, ids=[p.name for p in PIPELINES])
def test_every_pipeline_compiles_for_the_local_engine(path):
    from ml_service.ci.model.pipeline import normalize

    stages = normalize(Compiler(ROOT).compile(path))
    assert stages and all(stage.jobs for stage in stages)


def test_release_waits_for_approval_on_production():
    from ml_service.ci.model.pipeline import normalize

    settings = load_settings({"MLOPS_ROOT": str(ROOT)})
    release = ROOT / ".pipelines" / f"{settings.model.project}-release.yml"
    stages = {s.name: s for s in normalize(Compiler(ROOT).compile(release))}
    assert list(stages) == ["Model", "QA", "Production"]
    assert stages["Production"].jobs[0].environment == "production"
    assert approvals.approval_config(settings, "production") is not None


@pytest.mark.parametrize("given, expected", [(None, "0"), ("25", "25")])
def test_the_release_passes_the_canary_share_to_the_production_step_through_env(given, expected):
    from ml_service.ci.model.pipeline import normalize

    settings = load_settings({"MLOPS_ROOT": str(ROOT)})
    release = ROOT / ".pipelines" / f"{settings.model.project}-release.yml"
    params = {} if given is None else {"canaryPercent": given}
    stages = {s.name: s for s in normalize(Compiler(ROOT).compile(release, params))}
    deploy = [s for s in stages["Production"].jobs[0].steps if "mlops deploy prod" in s.get("bash", "")]
    assert len(deploy) == 1 and str(deploy[0]["env"]["CANARY_PERCENT"]) == expected
    assert '--canary "$CANARY_PERCENT"' in deploy[0]["bash"]


def test_the_release_refuses_a_canary_share_that_is_not_a_number():
    settings = load_settings({"MLOPS_ROOT": str(ROOT)})
    release = ROOT / ".pipelines" / f"{settings.model.project}-release.yml"
    from ml_service.ci.model.template import TemplateError

    with pytest.raises(TemplateError, match="canaryPercent' must be a number"):
        Compiler(ROOT).compile(release, {"canaryPercent": "$(touch /tmp/x)"})


def test_cancel_stops_a_running_run_and_records_it(project, tmp_path):
    proc, store = start_slow_run(project, tmp_path)
    cancel = mlops("ci", "cancel", "1")
    assert cancel.returncode == 0 and "cancel requested" in cancel.stdout
    proc.wait(timeout=60)
    run = store.get_run(1)
    assert run.status == "completed" and run.result == "canceled"
    assert [r["result"] for r in store.records(1) if r["kind"] == "step"] == ["Canceled"]
    assert "never printed" not in mlops("ci", "logs", "1").stdout
    assert mlops("ci", "cancel", "1").returncode == 1  # already completed: a clear error


UPSTREAM = """
trigger: none
parameters:
  - name: publish
    type: boolean
    default: 'true'
steps:
  - bash: |
      mkdir -p "$(Build.ArtifactStagingDirectory)/model"
      echo '{"version": "5"}' > "$(Build.ArtifactStagingDirectory)/model/model.json"
  - ${{ if eq(parameters.publish, true) }}:
    - publish: $(Build.ArtifactStagingDirectory)/model
      artifact: model
"""
DOWNSTREAM = """
trigger: none
resources:
  pipelines:
    - pipeline: up
      source: upstream
      trigger: {branches: {include: [main]}}
steps:
  - download: up
    artifact: model
    continueOnError: 'true'
  - bash: |
      if [ -f "$(Pipeline.Workspace)/up/model/model.json" ]; then
        echo "deploying $(cat "$(Pipeline.Workspace)/up/model/model.json") from run $(Resources.Pipeline.up.RunID)"
      else
        echo "nothing to deploy"
      fi
"""


def test_a_completion_trigger_passes_the_artifact_or_does_nothing_without_one(project, tmp_path):
    source = tmp_path / "repo"
    (source / ".pipelines").mkdir(parents=True)
    (source / ".pipelines" / "upstream.yml").write_text(UPSTREAM)
    (source / ".pipelines" / "downstream.yml").write_text(DOWNSTREAM)
    store = service.open_store(project)
    first = service.queue(project, store, source / ".pipelines" / "upstream.yml", "Manual", {}, source, "main", "c1")
    ran = service.execute(project, store, first)
    assert len(ran) == 2
    down = store.get_run(ran[1])
    assert (down.pipeline, down.reason, down.resources["up"]["runID"]) == ("downstream", "ResourceTrigger", first)
    logs = "".join(Path(r["log"]).read_text() for r in store.records(down.id) if r["log"])
    assert f'deploying {{"version": "5"}} from run {first}' in logs
    second = service.queue(project, store, source / ".pipelines" / "upstream.yml", "Manual", {"publish": "false"},
                           source, "main", "c2")
    ran = service.execute(project, store, second)
    logs = "".join(Path(r["log"]).read_text() for r in store.records(ran[1]) if r["log"])
    assert "nothing to deploy" in logs and "deploying" not in logs
    other = service.queue(project, store, source / ".pipelines" / "upstream.yml", "Manual", {}, source, "dev", "c3")
    assert service.execute(project, store, other) == [other]  # the branch filter stops the trigger


FAKE_MAKEFILE = """\
# Stands in for the project's Makefile: the quality gate's targets write the reports it publishes.
REPORTS = .mlops/test-results
install:
\t@echo "$$MLOPS_MODEL: make install" >> "$$MLOPS_STATE_DIR/calls.log"
ci-lint:
\t@mkdir -p $(REPORTS) && echo '<testsuite tests="1" failures="0"/>' > $(REPORTS)/flake8-junit.xml
ci-test:
\t@echo "$$MLOPS_MODEL: make ci-test $(TESTS)" >> "$$MLOPS_STATE_DIR/calls.log"
\t@mkdir -p $(REPORTS) && echo '<testsuite tests="3" failures="0"/>' > $(REPORTS)/junit.xml
\t@echo '<coverage line-rate="0.9"/>' > $(REPORTS)/coverage.xml
"""
FAKE_MLOPS = """\
#!/bin/bash
# Stands in for `mlops`: records each call with the model it acts on; `pipeline run` registers
# version 1 when the state folder holds register-<model>.
echo "$MLOPS_MODEL: mlops $*" >> "$MLOPS_STATE_DIR/calls.log"
if [ "$1 $2" = "pipeline run" ]; then
  while [ $# -gt 0 ]; do [ "$1" = "--output-json" ] && out="$2"; shift; done
  version=null; [ -f "$MLOPS_STATE_DIR/register-$MLOPS_MODEL" ] && version='"1"'
  printf '{"run_id": "r", "model_name": "%s_model", "registered_version": %s}' "$MLOPS_MODEL" "$version" > "$out"
fi
# `deploy check qa`: in sync, unless the state folder holds qa-lost-<model> (QA lost its champion, version 1).
if [ "$1 $2" = "deploy check" ] && [ -f "$MLOPS_STATE_DIR/qa-lost-$MLOPS_MODEL" ]; then
  printf '{"model": "%s_model", "champion": "1", "live": null, "in_sync": false, "release": "%s_model:1"}\n' \
    "$MLOPS_MODEL" "$MLOPS_MODEL"
  exit 3
fi
"""


def model_repo(work: Path) -> None:
    """A repository with two model projects, their generated pipelines, the real templates, fake tools."""
    import shutil

    from ml_service.ci import scaffold

    shutil.copytree(ROOT / ".pipelines" / "templates", work / ".pipelines" / "templates")
    for project in ("alpha", "beta"):
        (work / project).mkdir()
        (work / project / "model.py").write_text("x = 1\n")
        (work / "data" / "contract").mkdir(parents=True, exist_ok=True)
        (work / "data" / f"{project}.csv").write_text("a,b\n1,2\n")
        (work / "data" / "contract" / f"{project}.json").write_text("{}\n")
        scaffold.write_model_pipelines(work, project, [f"data/{project}.csv", f"data/contract/{project}.json"],
                                       data=f"data/{project}.csv", contract=f"data/contract/{project}.json")
    (work / "ml_service").mkdir()
    (work / "ml_service" / "platform.py").write_text("x = 1\n")
    (work / "docs").mkdir()
    (work / "docs" / "guide.txt").write_text("docs\n")
    (work / "Makefile").write_text(FAKE_MAKEFILE)
    (work / ".venv" / "bin").mkdir(parents=True)
    (work / ".venv" / "bin" / "mlops").write_text(FAKE_MLOPS)
    (work / ".venv" / "bin" / "mlops").chmod(0o755)


def commit_and_push(work: Path, changes: dict[str, str]) -> str:
    for path, text in changes.items():
        (work / path).write_text(text)
    git(work, "add", ".")
    git(work, "-c", "user.email=t@example.invalid", "-c", "user.name=t", "commit", "-qm", "change")
    subprocess.run(["git", "push", "-q", "mlops", "main"], cwd=work, check=True, capture_output=True, timeout=120)
    return git(work, "rev-parse", "HEAD").strip()


def test_a_push_builds_only_the_models_it_touches_and_each_chain_acts_on_its_model(project, tmp_path):
    from ml_service.ci.server import hooks

    work = tmp_path / "work"
    work.mkdir()
    model_repo(work)
    git(work, "init", "-q", "-b", "main")
    git(work, "add", ".")
    git(work, "-c", "user.email=t@example.invalid", "-c", "user.name=t", "commit", "-qm", "first")
    hooks.install(project, tmp_path / "remote.git", work_repo=work)
    project.state_dir.mkdir(parents=True, exist_ok=True)
    (project.state_dir / "register-alpha").write_text("")  # alpha's retrain registers a version, beta's does not
    store = service.open_store(project)

    def pipelines_of(runs, commit):
        return sorted(r.pipeline for r in runs if r.commit_sha == commit)

    subprocess.run(["git", "push", "-q", "mlops", "main"], cwd=work, check=True, capture_output=True, timeout=120)
    first = git(work, "rev-parse", "HEAD").strip()
    runs = wait_for_runs(store, 5)  # a new branch: its change set is unknown, so every build runs
    assert pipelines_of(runs, first) == ["alpha-build", "alpha-release", "alpha-retrain", "beta-build",
                                         "beta-retrain"]  # beta registered nothing: no release
    assert all(r.result == "succeeded" for r in runs), [(r.pipeline, r.result) for r in runs]
    by_name = {r.pipeline: r for r in runs}
    assert by_name["alpha-release"].resources["retrain"]["runID"] == by_name["alpha-retrain"].id
    assert by_name["alpha-retrain"].resources["build"]["runID"] == by_name["alpha-build"].id
    calls = (project.state_dir / "calls.log").read_text().splitlines()
    retrain_id = by_name["alpha-retrain"].id
    for expected in (": make ci-test alpha/tests",  # its own tests only, without the pipeline's model selection
                     "alpha: mlops data validate data/alpha.csv --suite data/contract/alpha.json",
                     "alpha: mlops pipeline publish",
                     "alpha: mlops image build --model alpha_model:1",
                     "alpha: mlops deploy qa --model alpha_model:1",
                     "alpha: mlops smoke-test qa",
                     "alpha: mlops deploy prod --model alpha_model:1",
                     "beta: mlops data validate data/beta.csv --suite data/contract/beta.json",
                     "beta: mlops pipeline run --published"):
        assert any(line.startswith(expected) for line in calls), (expected, calls)
    assert any(line.startswith("alpha: mlops pipeline run --published") and
               f" --build-id {retrain_id} --build-uri mlops-ci://" in line for line in calls), calls
    assert "beta: mlops deploy check qa --json" in calls  # not promoted: is QA still serving the champion?
    assert not [line for line in calls if line.startswith("beta:") and "deploy" in line and "check" not in line]
    retrain = {r["display"]: r["result"] for r in store.records(by_name["beta-retrain"].id)}
    assert retrain["A release is needed (a new version, or QA lost the champion)"] == "Skipped"

    only_alpha = commit_and_push(work, {"alpha/model.py": "x = 2\n"})
    runs = wait_for_runs(store, 8)
    assert pipelines_of(runs, only_alpha) == ["alpha-build", "alpha-release", "alpha-retrain"]

    platform = commit_and_push(work, {"ml_service/platform.py": "x = 2\n"})
    runs = wait_for_runs(store, 13)
    assert pipelines_of(runs, platform) == ["alpha-build", "alpha-release", "alpha-retrain", "beta-build",
                                            "beta-retrain"]

    docs = commit_and_push(work, {"docs/guide.txt": "more docs\n", "alpha/NOTES.md": "notes\n"})
    beta_data = commit_and_push(work, {"data/beta.csv": "a,b\n1,3\n"})
    runs = wait_for_runs(store, 15)
    assert pipelines_of(runs, beta_data) == ["beta-build", "beta-retrain"]
    assert pipelines_of(runs, docs) == []  # the docs-only push queued nothing
    assert len(store.list_runs(100)) == 15

    (project.state_dir / "qa-lost-beta").write_text("")  # beta's QA container was removed: releases converge
    converge = commit_and_push(work, {"data/beta.csv": "a,b\n1,4\n"})
    runs = wait_for_runs(store, 18)
    assert pipelines_of(runs, converge) == ["beta-build", "beta-release", "beta-retrain"]
    calls = (project.state_dir / "calls.log").read_text().splitlines()
    assert "beta: mlops deploy qa --model beta_model:1" in calls  # the champion, though nothing was registered


def test_the_console_shows_a_failed_steps_last_lines_and_the_runs_summaries(project, tmp_path):
    pipeline = tmp_path / "story.yml"
    pipeline.write_text("""
steps:
  - bash: |
      echo "retrain: not promoted: candidate mse 2.0 vs champion v1 1.0" > "$(Agent.TempDirectory)/s.md"
      echo "##vso[task.uploadsummary]$(Agent.TempDirectory)/s.md"
    displayName: Decide
  - bash: |
      for i in $(seq 1 30); do echo "noise $i"; done
      echo "the real reason: no Docker engine answers" >&2
      exit 4
    displayName: Build the image
""")
    result = mlops("ci", "run", str(pipeline))
    assert result.returncode == 1
    out = result.stdout
    assert "the real reason: no Docker engine answers" in out  # on the console, not only in `mlops ci logs`
    assert "noise 30" in out and "noise 1\n" not in out  # the last lines only
    assert 'full log: mlops ci logs 1 --step "Build the image"' in out
    assert "  retrain: not promoted: candidate mse 2.0 vs champion v1 1.0" in out  # the run's summary
    shown = mlops("ci", "logs", "1", "--step", "Build the image").stdout
    assert "noise 1\n" in shown


def test_a_pushed_branch_named_like_a_command_never_runs(project, tmp_path):
    from ml_service.ci.server import hooks

    marker = tmp_path / "marker"
    work = tmp_path / "work"
    (work / ".pipelines").mkdir(parents=True)
    (work / ".pipelines" / "pr.yml").write_text("""
trigger: none
pr:
  branches: {include: [main]}
steps:
  - bash: |
      echo "in $(System.DefaultWorkingDirectory)"
      echo "branch as data: $BUILD_SOURCEBRANCH"
  - bash: echo "spliced $(Build.SourceBranch)"
    displayName: spliced
""")
    git(work, "init", "-q", "-b", "main")
    git(work, "-c", "user.email=t@example.invalid", "-c", "user.name=t", "add", ".")
    git(work, "-c", "user.email=t@example.invalid", "-c", "user.name=t", "commit", "-qm", "first")
    hooks.install(project, tmp_path / "remote.git", work_repo=work)
    subprocess.run(["git", "push", "-q", "mlops", "main"], cwd=work, check=True, capture_output=True, timeout=120)
    branch = f"feat/$(touch${{IFS}}{marker})"
    git(work, "checkout", "-q", "-b", branch)
    subprocess.run(["git", "push", "-q", "mlops", branch], cwd=work, check=True, capture_output=True, timeout=120)
    store = service.open_store(project)
    runs = wait_for_runs(store, 1)
    assert not marker.exists()
    run = runs[0]
    assert (run.pipeline, run.branch) == ("pr", branch)
    logs = "".join(Path(r["log"]).read_text() for r in store.records(run.id) if r["log"])
    assert f"branch as data: refs/heads/{branch}" in logs
    assert f"in {store.directory / 'work' / str(run.id) / 's'}\n" in logs  # the run's checkout: no branch in its path
    assert [p.name[:19] for p in (store.directory / "checkouts").iterdir() if p.name.startswith("feat")] == \
        ["feat___touch__IFS__"]  # the pushed commit's checkout: the branch's name made safe
    spliced = next(r for r in store.records(run.id) if r["display"] == "spliced")
    assert spliced["result"] == "Failed" and "Build.SourceBranch holds shell syntax" in spliced["detail"]


def test_retrain_params_holding_a_command_reach_the_ml_pipeline_as_data(project, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    model_repo(work)
    project.state_dir.mkdir(parents=True, exist_ok=True)
    marker = tmp_path / "marker"
    store = service.open_store(project)
    hostile = f"alpha=$(touch {marker}) l1=`touch {marker}`;touch {marker}"
    run_id = service.queue(project, store, work / ".pipelines" / "alpha-retrain.yml", "Manual", {"params": hostile},
                           work, "main", "c1")
    service.execute(project, store, run_id, chain=False)
    assert not marker.exists()
    calls = (project.state_dir / "calls.log").read_text()
    assert f"--param alpha=$(touch --param {marker}) --param l1=`touch --param {marker}`;touch" in calls
    assert store.get_run(run_id).result == "succeeded"


# --- the `make run` chain through its completion triggers (folded from test_promises_pipelines, issue 19) -----------
# The real pipeline files and templates and the real local engine: build -> retrain -> release when a version was
# registered; the retrain publishes the `model` artifact only then (or when QA lost the champion), and the release
# deploys the version it names. `mlops` and the Makefile are the recording stand-ins of model_repo (named fakes:
# they record each call and answer as the real commands would), so the chain's wiring is what is under test.

@pytest.fixture
def chain(tmp_path, monkeypatch):
    (tmp_path / "mlops.yml").write_text("models:\n  - {project: alpha, name: alpha_model}\n"
                                        "  - {project: beta, name: beta_model}\n")
    monkeypatch.setenv("MLOPS_ROOT", str(tmp_path))
    monkeypatch.setenv("MLOPS_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("MLOPS_USER", "dev@example.com")
    monkeypatch.delenv("MLOPS_MODEL", raising=False)
    project = load_settings()
    work = tmp_path / "work"
    work.mkdir()
    model_repo(work)
    project.state_dir.mkdir(parents=True, exist_ok=True)
    return project, work


def run_chain(settings, work, pipeline: str):
    store = service.open_store(settings)
    first = service.queue(settings, store, work / ".pipelines" / f"{pipeline}.yml", "Manual", {}, work, "main", "c1")
    ran = service.execute(settings, store, first, chain=True)
    return store, {store.get_run(r).pipeline: store.get_run(r) for r in ran}


def calls(settings) -> list[str]:
    return (settings.state_dir / "calls.log").read_text().splitlines()


def test_a_registered_version_flows_from_build_through_retrain_to_release(chain):
    settings, work = chain
    (settings.state_dir / "register-alpha").write_text("")
    store, runs = run_chain(settings, work, "alpha-build")
    assert sorted(runs) == ["alpha-build", "alpha-release", "alpha-retrain"]
    assert all(r.result == "succeeded" for r in runs.values()), {n: r.result for n, r in runs.items()}
    assert runs["alpha-retrain"].resources["build"]["runID"] == runs["alpha-build"].id
    assert runs["alpha-release"].resources["retrain"]["runID"] == runs["alpha-retrain"].id
    artifact = store.artifacts_dir(runs["alpha-retrain"].id) / "model" / "model.json"
    assert '"version": "1"' in artifact.read_text()
    for call in ("image build --model alpha_model:1", "deploy qa --model alpha_model:1", "smoke-test qa",
                 "deploy prod --model alpha_model:1"):  # no approvals configured here: through production
        assert f"alpha: mlops {call}" in calls(settings), call


def test_retrain_publishes_model_only_when_a_version_was_registered(chain):
    settings, work = chain  # nothing registered, QA serves the champion
    store, runs = run_chain(settings, work, "alpha-retrain")
    retrain = runs["alpha-retrain"]
    assert sorted(runs) == ["alpha-retrain"] and retrain.result == "succeeded"
    assert not (store.artifacts_dir(retrain.id) / "model").exists()
    records = {r["display"]: r["result"] for r in store.records(retrain.id)}
    assert records["Publish the model artifact"] == "Skipped"
    assert not [line for line in calls(settings) if "deploy qa" in line or "image build" in line]

    (settings.state_dir / "register-alpha").write_text("")
    store, runs = run_chain(settings, work, "alpha-retrain")
    assert sorted(runs) == ["alpha-release", "alpha-retrain"]
    assert (store.artifacts_dir(runs["alpha-retrain"].id) / "model" / "model.json").is_file()
