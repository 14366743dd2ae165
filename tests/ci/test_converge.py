"""`make run` converges (ml_service/ci/server/converge.py), the build gates its own project with its data first, and a
retrain fired before anything was published never fails: real git, the real engine and pipeline files, with
recording stand-ins for `mlops` and `make` (as tests/ci/test_local.py)."""
from __future__ import annotations

import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest

from ml_service.ci.server import converge, scheduler, service
from ml_service.config import load_settings
from tests.ci.test_local import git, model_repo

pytestmark = pytest.mark.integration

# Stands in for `mlops`: records each call with the model it acts on. Flags in the state folder steer it:
# register-<model> (pipeline run registers version 1), fail-<model> (pipeline run fails), unpublished-<model>
# (pipeline run finds nothing published), bad-data-<model> (data validate fails naming a column), qa-lost-<model>
# (deploy check: QA does not serve the champion 1), qa-fail-<model> (deploy qa fails, and QA has lost it). With a
# champion, QA serves it unless qa-lost.
FAKE_MLOPS = """\
#!/bin/bash
echo "$MLOPS_MODEL: mlops $*" >> "$MLOPS_STATE_DIR/calls.log"
flag() { [ -f "$MLOPS_STATE_DIR/$1-$MLOPS_MODEL" ]; }
case "$1 $2" in
  "pipeline run")
    flag fail && { echo "training crashed" >&2; exit 1; }
    flag unpublished && { echo "error: no published pipeline named '$MLOPS_MODEL-retrain'" >&2; exit 1; }
    while [ $# -gt 0 ]; do [ "$1" = "--output-json" ] && out="$2"; shift; done
    version=null; flag register && version='"1"' && touch "$MLOPS_STATE_DIR/champion-$MLOPS_MODEL"
    printf '{"run_id": "r", "model_name": "%s_model", "registered_version": %s, "outcome": "o"}' \\
      "$MLOPS_MODEL" "$version" > "$out";;
  "data validate")
    flag bad-data && { echo "expect_column_values_to_be_between [BMI]: 442 unexpected value(s)"; exit 1; };;
  "deploy check")
    champion=null; flag champion && champion='"1"'
    if flag qa-lost; then
      printf '{"model": "%s_model", "champion": %s, "live": null, "in_sync": false, "detail": "gone"}\\n' \\
        "$MLOPS_MODEL" "$champion"; exit 3
    fi
    printf '{"model": "%s_model", "champion": %s, "live": %s, "in_sync": true, "detail": "live"}\\n' \\
      "$MLOPS_MODEL" "$champion" "$champion";;
  "deploy qa")
    flag qa-fail && { touch "$MLOPS_STATE_DIR/qa-lost-$MLOPS_MODEL"; echo "container did not start" >&2; exit 1; }
    rm -f "$MLOPS_STATE_DIR/qa-lost-$MLOPS_MODEL";;
esac
exit 0
"""
MLOPS_YML = """\
models:
  - {project: alpha, name: alpha_model}
  - {project: beta, name: beta_model}
environments:
  production:
    approval: {approvers: [], timeout_minutes: 60}
"""


@pytest.fixture
def repo(tmp_path, monkeypatch):
    """A git repository with two model projects (alpha, beta), their generated pipelines and the stand-ins."""
    work = tmp_path / "work"
    work.mkdir()
    model_repo(work)
    (work / ".venv" / "bin" / "mlops").write_text(FAKE_MLOPS)
    (work / "mlops.yml").write_text(MLOPS_YML)
    # the stand-ins are committed: steps run in a checkout (ci/sources.py), where install.yml puts .venv/bin on PATH
    (work / ".gitignore").write_text("*.pyc\n")
    git(work, "init", "-q", "-b", "main")
    git(work, "add", ".")
    git(work, "-c", "user.email=t@example.invalid", "-c", "user.name=t", "commit", "-qm", "first")
    state = tmp_path / "state"
    state.mkdir()
    monkeypatch.setenv("MLOPS_ROOT", str(work))
    monkeypatch.setenv("MLOPS_STATE_DIR", str(state))
    monkeypatch.setenv("MLOPS_USER", "dev@example.com")
    monkeypatch.delenv("MLOPS_MODEL", raising=False)
    return work


def make_run(work: Path, *args: str) -> subprocess.CompletedProcess:
    """`make run`'s convergence step, as the Makefile runs it."""
    return subprocess.run([sys.executable, "-m", "ml_service.ci.server.converge", *args], cwd=work, capture_output=True,
                          text=True, timeout=600)


def runs(work: Path) -> list:
    return service.open_store(load_settings()).list_runs(1000)


def calls(work: Path) -> list[str]:
    path = load_settings().state_dir / "calls.log"
    return path.read_text().splitlines() if path.exists() else []


def flag(name: str) -> Path:
    path = load_settings().state_dir / name
    path.write_text("")
    return path


def test_a_tree_already_through_its_chain_runs_nothing_and_only_a_change_its_build_watches_reruns_it(repo):
    flag("register-alpha")
    first = make_run(repo)
    assert first.returncode == 0, first.stdout + first.stderr
    assert sorted(r.pipeline for r in runs(repo)) == ["alpha-build", "alpha-release", "alpha-retrain"]
    assert runs(repo)[0].status == "waiting"  # the release waits for the production approval

    again = make_run(repo)
    assert again.returncode == 0, again.stdout + again.stderr
    assert len(runs(repo)) == 3  # nothing ran again
    assert sum(" pipeline run " in line for line in calls(repo)) == 1

    (repo / "beta" / "model.py").write_text("x = 2\n")  # another project's change, uncommitted
    (repo / "docs" / "guide.txt").write_text("more\n")
    assert make_run(repo).returncode == 0
    assert len(runs(repo)) == 3

    (repo / "alpha" / "model.py").write_text("x = 3\n")  # this project's change, uncommitted: it counts
    changed = make_run(repo)
    assert changed.returncode == 0, changed.stdout + changed.stderr
    assert [r.pipeline for r in runs(repo)[:3]] == ["alpha-release", "alpha-retrain", "alpha-build"]
    assert len(runs(repo)) == 6
    assert runs(repo)[3].result == "canceled"  # the older release no longer waits: superseded

    git(repo, "add", ".")  # the same tree, committed: already through its chain
    git(repo, "-c", "user.email=t@example.invalid", "-c", "user.name=t", "commit", "-qm", "alpha and beta")
    assert make_run(repo).returncode == 0
    assert len(runs(repo)) == 6

    forced = make_run(repo, "--force")
    assert forced.returncode == 0
    assert len(runs(repo)) == 9
    assert not [line for line in calls(repo) if line.startswith("beta:")]  # beta's chain never ran


def test_another_project_converges_on_its_own_record(repo):
    assert make_run(repo).returncode == 0
    assert make_run(repo, "--project", "beta").returncode == 0
    assert make_run(repo, "--project", "beta").returncode == 0
    assert sorted(r.pipeline for r in runs(repo)) == ["alpha-build", "alpha-retrain", "beta-build", "beta-retrain"]
    assert [line for line in calls(repo) if "pipeline run" in line][-1].startswith("beta: ")


def test_qa_that_lost_the_champion_gets_it_back_without_rerunning_build_or_retrain(repo):
    flag("register-alpha")
    assert make_run(repo).returncode == 0
    flag("qa-lost-alpha")
    back = make_run(repo)
    assert back.returncode == 0, back.stdout + back.stderr
    assert sorted(r.pipeline for r in runs(repo)) == ["alpha-build", "alpha-release", "alpha-release",
                                                      "alpha-retrain"]
    newest = runs(repo)[0]
    assert newest.params == {"model": "alpha_model:1"} and newest.status == "waiting"
    assert calls(repo).count("alpha: mlops deploy qa --model alpha_model:1") == 2
    assert sum(" pipeline run " in line for line in calls(repo)) == 1


def test_a_failed_release_is_retried_alone_by_the_next_make_run(repo):
    flag("register-alpha")
    marker = flag("qa-fail-alpha")
    failed = make_run(repo)
    assert failed.returncode == 1
    assert [(r.pipeline, r.result) for r in runs(repo)] == [("alpha-release", "failed"), ("alpha-retrain", "succeeded"),
                                                            ("alpha-build", "succeeded")]
    marker.unlink()
    again = make_run(repo)
    assert again.returncode == 0, again.stdout + again.stderr
    newest = runs(repo)[0]
    assert (newest.pipeline, newest.params, newest.status) == ("alpha-release", {"model": "alpha_model:1"}, "waiting")
    assert len(runs(repo)) == 4  # neither the build nor the retrain ran again


def test_approve_gives_the_waiting_approval_and_production_runs(repo):
    flag("register-alpha")
    assert make_run(repo).returncode == 0
    assert not [line for line in calls(repo) if "deploy prod" in line]
    approved = make_run(repo, "--approve")
    assert approved.returncode == 0, approved.stdout + approved.stderr
    release = next(r for r in runs(repo) if r.pipeline == "alpha-release")
    assert (release.status, release.result) == ("completed", "succeeded")
    assert store_approvals(release.id) == ["approved"]
    assert any(line.startswith("alpha: mlops deploy prod --model alpha_model:1") for line in calls(repo))
    assert len(runs(repo)) == 3


def store_approvals(run_id: int) -> list[str]:
    return [a["status"] for a in service.open_store(load_settings()).approvals(run_id)]


def test_a_failed_chain_is_not_taken_as_done(repo):
    marker = flag("fail-alpha")
    failed = make_run(repo)
    assert failed.returncode == 1
    marker.unlink()
    assert make_run(repo).returncode == 0  # the same tree: run again, since it never got through
    assert sorted(r.pipeline for r in runs(repo)) == ["alpha-build", "alpha-build", "alpha-retrain",
                                                      "alpha-retrain"]
    assert [r.result for r in runs(repo)][:2] == ["succeeded", "succeeded"]


def test_the_time_line_adds_up_the_chains_stages():
    class Run:
        def __init__(self, id, pipeline, started, finished):
            self.id, self.pipeline, self.started, self.finished, self.created = id, pipeline, started, finished, 0

    class Store:
        def records(self, run_id):
            return [{"kind": "stage", "name": "Model", "started": 100, "finished": 101},
                    {"kind": "stage", "name": "QA", "started": 101, "finished": 131},
                    {"kind": "step", "name": "image", "started": 102, "finished": 122},
                    {"kind": "stage", "name": "Production", "started": 131, "finished": 200}]

    times = converge.phase_times(Store(), [Run(1, "a-build", 0, 40), Run(2, "a-retrain", 40, 70),
                                           Run(3, "a-release", 70, 80), Run(3, "a-release", 70, 80)])
    assert times == {"build": 40, "retrain": 30, "image": 20, "QA": 11}


def test_the_build_runs_its_data_tests_first_and_its_code_tests_beside_them(repo):
    flag("bad-data-alpha")
    failed = make_run(repo)
    assert failed.returncode == 1
    store = service.open_store(load_settings())
    build = next(r for r in store.list_runs() if r.pipeline == "alpha-build")
    stages = [(r["name"], r["result"]) for r in store.records(build.id) if r["kind"] == "stage"]
    assert stages == [("DataTests", "Failed"), ("Quality", "Succeeded"), ("Publish", "Skipped")]
    assert "BMI" in failed.stdout  # the contract's reason reaches the console
    assert [line.split(": ", 1)[1] for line in calls(repo) if "ci-test" in line or "validate" in line] == \
        ["mlops data validate data/alpha.csv --suite data/contract/alpha.json", "make ci-test alpha/tests"]
    assert len(store.list_runs()) == 1  # no retrain


PIPELINE_YML = """\
name: alpha-retrain
steps:
  train:
    function: alpha.model:train
    code: [alpha]
"""
THREE_AM = datetime(2030, 1, 3, 3, 0, 10, tzinfo=timezone.utc)


def test_a_nightly_retrain_of_a_project_never_published_builds_it_first(repo):
    (repo / "alpha" / "pipeline.yml").write_text(PIPELINE_YML)
    (repo / "beta" / "pipeline.yml").write_text(PIPELINE_YML.replace("alpha", "beta"))
    git(repo, "add", ".")
    git(repo, "-c", "user.email=t@example.invalid", "-c", "user.name=t", "commit", "-qm", "pipelines")
    settings = load_settings()
    from ml_service.pipelines.definition import load_pipeline
    from ml_service.pipelines.publish import publish

    publish(settings.select("beta"), load_pipeline(repo / "beta" / "pipeline.yml"))  # beta's build ran once
    events, queued = scheduler.tick(settings, THREE_AM)
    fired = {e.pipeline: e for e in events if e.action == "fired"}
    assert set(fired) == {"alpha-retrain", "beta-retrain"}
    store = service.open_store(settings)
    assert sorted(store.get_run(i).pipeline for i in queued) == ["alpha-build", "beta-retrain"]
    for run_id in queued:
        service.execute(settings, store, run_id)
    done = store.list_runs()
    assert sorted(r.pipeline for r in done) == ["alpha-build", "alpha-retrain", "beta-retrain"]
    assert all(r.result == "succeeded" for r in done), [(r.pipeline, r.result) for r in done]
    assert next(r for r in done if r.pipeline == "alpha-build").reason == "Schedule"
    assert next(r for r in done if r.pipeline == "alpha-retrain").resources["build"]["pipelineName"] == "alpha-build"


def test_a_retrain_triggered_before_anything_was_published_retrains_nothing_and_does_not_fail(repo):
    (repo / "alpha" / "pipeline.yml").write_text(PIPELINE_YML)
    flag("unpublished-alpha")
    settings = load_settings()
    store = service.open_store(settings)
    run_id = service.queue(settings, store, repo / ".pipelines" / "alpha-retrain.yml", "ResourceTrigger")
    assert service.execute(settings, store, run_id) == [run_id]  # no release follows
    run = store.get_run(run_id)
    assert run.result in ("succeeded", "succeededWithIssues")
    stages = {r["name"]: r["result"] for r in store.records(run_id) if r["kind"] == "stage"}
    assert stages == {"Retrain": stages["Retrain"], "Release": "Skipped"}
    assert stages["Retrain"] in ("Succeeded", "SucceededWithIssues")

    from ml_service.pipelines.definition import load_pipeline
    from ml_service.pipelines.publish import publish

    publish(settings.select("alpha"), load_pipeline(repo / "alpha" / "pipeline.yml"))
    flag("fail-alpha")  # published, the training's own failure fails the retrain
    failing = service.queue(settings, store, repo / ".pipelines" / "alpha-retrain.yml", "ResourceTrigger")
    service.execute(settings, store, failing)
    assert store.get_run(failing).result == "failed"


def test_on_another_branch_make_run_still_follows_the_whole_chain(repo):
    git(repo, "checkout", "-q", "-b", "feature")  # the completion triggers name main only
    flag("register-alpha")
    done = make_run(repo)
    assert done.returncode == 0, done.stdout + done.stderr
    by_name = {r.pipeline: r for r in runs(repo)}
    assert sorted(by_name) == ["alpha-build", "alpha-release", "alpha-retrain"]
    assert by_name["alpha-retrain"].resources["build"]["runID"] == by_name["alpha-build"].id
    assert by_name["alpha-release"].resources["retrain"]["runID"] == by_name["alpha-retrain"].id
    assert all(r.branch == "feature" for r in by_name.values())
    assert make_run(repo).returncode == 0
    assert len(runs(repo)) == 3


def test_recording_one_projects_chain_keeps_the_others(tmp_path, monkeypatch):
    """`make run --project beta` after alpha's chain: alpha's record stays, so its next `make run` reruns nothing."""
    monkeypatch.setenv("MLOPS_STATE_DIR", str(tmp_path / "state"))
    settings = load_settings()
    converge.write_state(settings, "alpha", {"tree": "a1"})
    converge.write_state(settings, "beta", {"tree": "b1"})
    converge.write_state(settings, "beta", {"tree": "b2"})
    assert converge.read_state(settings) == {"alpha": {"tree": "a1"}, "beta": {"tree": "b2"}}
