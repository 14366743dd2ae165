"""Issue 24: pipeline steps get a least-privilege credential for the run, never the admin password.

Against a real team workspace (`mlops workspace up`: PostgreSQL 15 and MLflow's server with basic auth) whose
checkout acts as the admin: a hostile step records its environment and tries admin actions with the credential it
was given; the admin password is in no environment of a step and in no file the run wrote, the step's own password
is not kept in its log, every admin action is refused by the server, the run still registers, and the run's user
is gone when the run ends (finished, failed, interrupted, or killed: then the next run deletes it).
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ml_service.config import load_settings
from tests.team.test_workspace import run_mlops, start_team

pytestmark = [pytest.mark.integration, pytest.mark.slow]
PROBE = "tests.support.steps:probe_credential"


@pytest.fixture(scope="module")
def team(tmp_path_factory):
    """A team workspace whose checkout acts as the admin."""
    state_dir = tmp_path_factory.mktemp("team-run-user")
    env = start_team(state_dir)
    settings = load_settings(env)
    assert settings.tracking_username == "admin"
    yield {"env": env, "uri": settings.tracking_uri, "admin": settings.tracking_password, "state_dir": state_dir}
    run_mlops(env, "workspace", "down")


def admin_api(team):
    """MLflow's basic-auth API as the admin (in this test process only)."""
    from ml_service.workspace.auth_api import AuthApi

    os.environ.update(MLFLOW_TRACKING_USERNAME="admin", MLFLOW_TRACKING_PASSWORD=team["admin"])
    return AuthApi(team["uri"])


def run_users(team) -> list[str]:
    from ml_service.team.run_user import PREFIX

    return [name for name in admin_api(team).list_usernames() if name.startswith(PREFIX)]


def probe_pipeline(tmp_path: Path, name: str, then: str = "", sleep: float = 0) -> Path:
    """A pipeline of two hostile steps (a fresh process, and one forked from the preloading server), then `then`."""
    extra = f"\n  after:\n    function: {then}\n    after: [forked]\n    reuse: false" if then else ""
    path = tmp_path / f"{name}.yml"
    path.write_text(f"""name: {name}
steps:
  fresh:
    function: {PROBE}
    params: {{report: {tmp_path / 'fresh.json'}}}
    reuse: false
  forked:
    function: {PROBE}
    after: [fresh]
    imports: [json]
    params: {{report: {tmp_path / 'forked.json'}, then_sleep: {sleep}}}
    reuse: false{extra}
""")
    return path


def files_holding(folder: Path, secret: str, skip: tuple[Path, ...] = ()) -> list[Path]:
    """Every file under folder whose bytes contain secret (skip: folders that hold it by design)."""
    found = []
    for path in folder.rglob("*"):
        if path.is_file() and not path.is_symlink() and not any(s == path or s in path.parents for s in skip):
            if secret.encode() in path.read_bytes():
                found.append(path)
    return found


def test_a_step_holds_only_its_runs_credential_cannot_administer_and_the_user_is_gone_after(team, tmp_path):
    before = set(run_users(team))
    ran = run_mlops(team["env"], "pipeline", "run", str(probe_pipeline(tmp_path, "probe")))
    assert ran.returncode == 0, ran.stdout + ran.stderr
    reports = [json.loads((tmp_path / f"{step}.json").read_text()) for step in ("fresh", "forked")]
    user = reports[0]["environ"]["MLFLOW_TRACKING_USERNAME"]
    password = reports[0]["environ"]["MLFLOW_TRACKING_PASSWORD"]
    assert user.startswith("mlops-run-") and user != "admin" and password
    for report in reports:
        assert report["environ"]["MLFLOW_TRACKING_USERNAME"] == user  # the forked step too
        assert not [k for k, v in report["environ"].items() if team["admin"] in v]
        assert team["admin"] not in report["proc_environ"]
        assert all(status == 403 for status in report["refused"].values()), report["refused"]
    # the server holds none of what the steps tried
    api = admin_api(team)
    names = api.list_usernames()
    assert "intruder" not in names and "admin" in names
    assert user not in names and set(run_users(team)) == before  # deleted when the run ended
    assert not list((team["state_dir"] / "run-users").iterdir())
    # no file of the workspace holds the admin password but its secret files; none keeps the step's password
    secrets = (team["state_dir"] / "team" / "secrets", team["state_dir"] / "secrets")
    assert files_holding(team["state_dir"], team["admin"], skip=secrets) == []
    assert files_holding(team["state_dir"], password) == []
    assert "my password is ***" in _step_log(team, ran, "fresh")


def _step_log(team, ran, step: str) -> str:
    """The kept log of a step of the pipeline run the output of `mlops pipeline run` names."""
    import mlflow

    run_id = next(line.split()[2] for line in ran.stdout.splitlines() if line.startswith("pipeline run "))
    admin_api(team)
    client = mlflow.MlflowClient(team["uri"], team["uri"])
    child = client.search_runs([client.get_run(run_id).info.experiment_id],
                               f"tags.`mlflow.parentRunId` = '{run_id}' and tags.`mlops.step.name` = '{step}'")[0]
    folder = client.download_artifacts(child.info.run_id, "logs")
    return (Path(folder) / "step.log").read_text()


def test_the_run_still_registers_and_its_runs_record_the_server_user_not_a_claimed_name(team):
    """The registered version's source run names the server user the checkout authenticated as (what the
    provenance check asks the server about), whatever MLOPS_USER claims; the claim is kept beside it."""
    from mlflow import MlflowClient

    ran = run_mlops({**team["env"], "MLOPS_USER": "reader@example.com"}, "pipeline", "run")
    assert ran.returncode == 0, ran.stdout + ran.stderr
    admin_api(team)
    client = MlflowClient(team["uri"], team["uri"])
    settings = load_settings(team["env"])
    champion = client.get_model_version_by_alias(settings.model_name, "champion")
    assert champion.version == "1"
    source = client.get_run(champion.run_id)
    parent = client.get_run(source.data.tags["mlflow.parentRunId"])
    for run in (source, parent):
        assert run.info.user_id == "admin"
        assert run.data.tags["mlops.claimed_user"] == "reader@example.com"
    assert run_users(team) == []


def test_a_failed_run_and_an_interrupted_run_delete_their_user(team, tmp_path):
    failed = run_mlops(team["env"], "pipeline", "run",
                       str(probe_pipeline(tmp_path, "probe-fails", then="tests.support.steps:raise_error")))
    assert failed.returncode != 0
    assert json.loads((tmp_path / "fresh.json").read_text())["environ"]["MLFLOW_TRACKING_USERNAME"]
    assert run_users(team) == []

    (tmp_path / "forked.json").unlink()
    process = _start(team, probe_pipeline(tmp_path, "probe-interrupted", sleep=300))
    _wait_for(tmp_path / "forked.json", process)
    user = json.loads((tmp_path / "forked.json").read_text())["environ"]["MLFLOW_TRACKING_USERNAME"]
    assert user in run_users(team)
    process.send_signal(signal.SIGINT)  # Ctrl-C
    process.communicate(timeout=300)
    assert user not in run_users(team)


def test_a_killed_runs_user_is_deleted_by_the_next_run(team, tmp_path):
    process = _start(team, probe_pipeline(tmp_path, "probe-killed", sleep=300))
    _wait_for(tmp_path / "forked.json", process)
    user = json.loads((tmp_path / "forked.json").read_text())["environ"]["MLFLOW_TRACKING_USERNAME"]
    os.killpg(process.pid, signal.SIGKILL)  # the runner and its steps, with no chance to clean up
    process.communicate(timeout=60)
    assert user in run_users(team)
    (tmp_path / "forked.json").unlink()
    ran = run_mlops(team["env"], "pipeline", "run", str(probe_pipeline(tmp_path, "probe-after")))
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert user not in run_users(team) and run_users(team) == []


def test_a_sweep_deletes_run_users_past_the_age_limit_and_keeps_younger_ones_of_other_machines(team):
    """Run users this checkout has no record of (another machine's runs): one older than MAX_AGE_SECONDS is left over
    by a killed run and deleted; one younger may be a run going on elsewhere and is kept (a minute either side)."""
    import secrets

    from ml_service.team import run_user

    api = admin_api(team)
    now = int(time.time())
    old = f"{run_user.PREFIX}{now - run_user.MAX_AGE_SECONDS - 60}-0000aaaa"
    young = f"{run_user.PREFIX}{now - run_user.MAX_AGE_SECONDS + 60}-0000bbbb"
    for name in (old, young):
        api.create_user(name, secrets.token_urlsafe(24))
    settings = load_settings(team["env"])
    try:
        deleted = run_user.sweep(settings)
        assert old in deleted and young not in deleted
        assert old not in run_users(team) and young in run_users(team)
    finally:
        run_user.delete(settings, young)


def _start(team, pipeline: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "ml_service.cli", "pipeline", "run", str(pipeline)],
                            cwd=team["env"]["MLOPS_ROOT"], env=team["env"], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True)


def _wait_for(path: Path, process: subprocess.Popen, seconds: float = 600) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"the step never wrote {path}: {process.communicate()[0]!r}")
        time.sleep(0.5)


def test_a_server_user_that_is_an_existing_one_by_the_name_rule_or_a_run_users_name_is_refused(team):
    """One rule for names on the team server too (ml_service/identity.py): `ADMIN` or a full-width `ａｄｍｉｎ` would
    be a second account the approvers and the Studio take for the admin; `mlops-run-*` names are the runs' own."""
    for name in ("ADMIN", "ａｄｍｉｎ", "mlops-run-1-abcdef"):
        added = run_mlops(team["env"], "workspace", "user", "add", name)
        assert added.returncode != 0, added.stdout
        assert name not in admin_api(team).list_usernames()
        assert not (team["state_dir"] / "secrets" / "users" / name).exists()
    added = run_mlops(team["env"], "workspace", "user", "add", "trainer")
    assert added.returncode == 0, added.stderr
    assert "trainer" in admin_api(team).list_usernames()


def test_a_champion_written_by_a_reader_is_refused_though_the_steps_may_not_ask_who_wrote_it(team, tmp_path):
    """The run user may not ask the server about another user's permissions, so the runner (the checkout's user)
    checks the champion it hands to evaluate: a version whose run was written by a user who holds only READ now
    (a writer since demoted) is refused before any step loads it (provenance.check), though its run and files are
    the experiment's. (The server records who wrote a run: team/server_auth.py; a client cannot name another.)"""
    import mlflow

    assert run_mlops(team["env"], "workspace", "user", "add", "reader").returncode == 0
    reader_password = (team["state_dir"] / "secrets" / "users" / "reader").read_text().strip()
    api = admin_api(team)
    mlflow.set_tracking_uri(team["uri"])
    mlflow.set_registry_uri(team["uri"])  # models:/ URIs are resolved through the registry URI
    client = mlflow.MlflowClient(team["uri"], team["uri"])
    settings = load_settings(team["env"])
    name = settings.model_name
    honest = client.get_model_version_by_alias(name, "champion")
    files = Path(mlflow.artifacts.download_artifacts(f"models:/{name}/{honest.version}", dst_path=str(tmp_path),
                                                     tracking_uri=team["uri"]))
    experiment = client.get_experiment_by_name(settings.experiment)
    api.grant_user_permission("reader", "experiment", experiment.experiment_id, "EDIT")
    os.environ.update(MLFLOW_TRACKING_USERNAME="reader", MLFLOW_TRACKING_PASSWORD=reader_password)
    try:
        run = client.create_run(experiment.experiment_id)
        client.log_artifacts(run.info.run_id, str(files), "model")
        client.set_terminated(run.info.run_id)
    finally:
        api = admin_api(team)
    api.revoke_user_permission("reader", "experiment", experiment.experiment_id)  # back to the default READ
    assert client.get_run(run.info.run_id).info.user_id == "reader"
    planted = client.create_model_version(name, f"{run.info.artifact_uri}/model", run_id=run.info.run_id)
    client.set_registered_model_alias(name, "champion", planted.version)
    try:
        ran = run_mlops(team["env"], "pipeline", "run", "--no-reuse")
        assert ran.returncode != 0
        assert f"refusing to load {name} version {planted.version}" in ran.stderr
        latest = max(int(v.version) for v in client.search_model_versions(f"name='{name}'"))
        assert latest == int(planted.version)  # nothing registered against it
        assert client.get_model_version_by_alias(name, "champion").version == planted.version
        assert run_users(team) == []
    finally:
        client.set_registered_model_alias(name, "champion", honest.version)
