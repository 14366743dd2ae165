"""A full disk is an expected failure, not a crash (issue 24 finding 7): `mlops ci run` and `mlops pipeline run` end
the run failed *saying* the disk is full, print no traceback, and keep what was recorded before.

The disk is real: a small tmpfs mounted over the workspace's state folder in a private mount namespace
(`unshare --user --map-root-user --mount`, util-linux), so nothing outside the test sees it. The store is copied
out of the namespace before it ends, and read here with the platform's own code.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.integration

FILL = """steps:
  - bash: echo first
    displayName: first
  - bash: head -c 3000000 /dev/zero | tr '\\0' 'x' | fold -w 100
    displayName: fill
  - bash: echo after
    displayName: after
"""


def in_namespace(script: str, tmp_path: Path) -> subprocess.CompletedProcess:
    """Run a bash script as root of a new user and mount namespace; it mounts what it needs and all is gone after."""
    if shutil.which("unshare") is None:
        pytest.fail("no `unshare` (util-linux): apt-get install util-linux", pytrace=False)
    path = tmp_path / "script.sh"
    path.write_text("set -u\n" + script)
    done = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "bash", str(path)],
                          capture_output=True, text=True, timeout=600)
    if "mount: " in done.stderr and "permission denied" in done.stderr.lower():
        pytest.fail(f"this machine refuses a tmpfs in a user namespace: {done.stderr}", pytrace=False)
    return done


def fill_to(state: Path, leave: int) -> str:
    """Shell lines: a filler file that leaves about `leave` bytes free in state."""
    return (f"head -c $(( $(df --output=avail -B1 {state} | tail -1) - {leave} )) /dev/zero > {state}/filler "
            "2>/dev/null || true\n")


def test_a_ci_step_that_fills_the_disk_fails_saying_so_and_the_runs_before_are_kept(tmp_path):
    project, state, kept = tmp_path / "project", tmp_path / "state", tmp_path / "kept"
    (project / ".pipelines").mkdir(parents=True)
    state.mkdir()
    (project / "mlops.yml").write_text("models:\n  - {project: alpha, name: alpha_model}\n")
    (project / ".pipelines" / "ok.yml").write_text("steps:\n  - bash: echo ok\n")
    (project / ".pipelines" / "fill.yml").write_text(FILL)
    for args in (["init", "-q", "-b", "main"], ["add", "."],
                 ["-c", "user.email=t@example.invalid", "-c", "user.name=t", "commit", "-qm", "init"]):
        subprocess.run(["git", *args], cwd=project, check=True, capture_output=True)
    mlops = f"{sys.executable} -m ml_service.cli"
    done = in_namespace(f"""
mount -t tmpfs -o size=8m tmpfs {state}
cd {project}
export MLOPS_ROOT={project} MLOPS_STATE_DIR={state} MLOPS_USER=dev@example.com PYTHONPATH={ROOT}
{mlops} ci run .pipelines/ok.yml > {tmp_path}/first.txt 2>&1; echo "first=$?"
{fill_to(state, 2_000_000)}
{mlops} ci run .pipelines/fill.yml > {tmp_path}/second.txt 2>&1; echo "second=$?"
cat /dev/zero > {state}/filler2 2>/dev/null
{mlops} ci show 2 > {tmp_path}/show.txt 2>&1; echo "show=$?"
rm -f {state}/filler {state}/filler2
cp -a {state}/. {kept}/
""", tmp_path)
    assert "first=0" in done.stdout and "second=1" in done.stdout, (done.stdout, done.stderr)
    assert "Traceback" not in (tmp_path / "second.txt").read_text()
    assert "show=1" in done.stdout and "Traceback" not in (tmp_path / "show.txt").read_text()  # one line, exit 1

    from ml_service.ci.server.store import Store

    store = Store(kept / "ci")
    runs = {run.id: run for run in store.list_runs()}
    assert (runs[1].status, runs[1].result) == ("completed", "succeeded")  # the run before is kept
    assert (runs[2].status, runs[2].result) == ("completed", "failed")
    first, fill, after = [r for r in store.records(2) if r["kind"] == "step"]  # in the file's order
    assert first["result"] == "Succeeded" and after["result"] == "Skipped"
    assert fill["result"] == "Failed"
    assert "disk full" in fill["detail"] and "engine process" not in fill["detail"]  # not 'killed: the engine...'


def test_a_pipeline_run_on_a_full_disk_ends_failed_saying_so_and_the_champion_stays(tmp_path):
    state, kept = tmp_path / "state", tmp_path / "kept"
    state.mkdir()
    mlops = f"{sys.executable} -m ml_service.cli"
    done = in_namespace(f"""
mount -t tmpfs -o size=12m tmpfs {state}
cd {ROOT}
export MLOPS_STATE_DIR={state} PYTHONPATH={ROOT}
unset MLOPS_TRACKING_URI MLOPS_ARTIFACT_ROOT MLOPS_MODEL MLOPS_MODEL_NAME MLOPS_EXPERIMENT
{mlops} pipeline run > {tmp_path}/first.txt 2>&1; echo "first=$?"
{fill_to(state, 300_000)}
{mlops} pipeline run --no-reuse > {tmp_path}/second.txt 2> {tmp_path}/second.err; echo "second=$?"
rm -f {state}/filler
cp -a {state}/. {kept}/
""", tmp_path)
    first = (tmp_path / "first.txt").read_text()
    assert "first=0" in done.stdout and "second=1" in done.stdout, (done.stdout, done.stderr, first)
    assert "Traceback" not in (tmp_path / "second.err").read_text()

    from ml_service.config import load_settings
    from ml_service.workspace.tracking import connect

    settings = load_settings({"MLOPS_ROOT": str(ROOT), "MLOPS_STATE_DIR": str(kept)})
    client = connect(settings)
    runs = client.search_runs([client.get_experiment_by_name(settings.experiment).experiment_id],
                              "tags.`mlops.kind` = 'pipeline'", order_by=["attributes.start_time ASC"])
    assert runs[0].info.status == "FINISHED"  # the run before is kept
    # the second run fails while it writes its snapshot; with the little room left it is recorded as failed for
    # that reason (never left RUNNING, never 'interrupted')
    assert [r.info.status for r in runs[1:]] == ["FAILED"]
    assert "disk is full" in runs[1].data.tags["mlops.error"] and "interrupted" not in runs[1].data.tags["mlops.error"]
    champion = client.get_model_version_by_alias(settings.model_name, "champion")
    assert champion.run_id and str(champion.version) == "1"  # the champion of the first run did not move
