"""Moving to the team workspace and keeping it: `mlops workspace migrate` from a real embedded sqlite
workspace into a real MLflow server on PostgreSQL, then `backup` and `restore` into a fresh cluster.
Each time a model version must still serve: loaded with mlflow.pyfunc from the server, it predicts
what the original predicts.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from ml_service.config import load_settings
from tests.conftest import ROOT
from tests.team.test_workspace import clean_env, run_mlops, start_team

pytestmark = [pytest.mark.integration, pytest.mark.slow]
MODEL = "team_migrated_model"


def parse_counts(stdout: str) -> dict[str, int]:
    line = stdout.strip().splitlines()[-1].split(": ", 1)[1]
    return {what: int(n) for n, what in (part.split(" ", 1) for part in line.split(", "))}


def server_env(team_env: dict, state_dir: Path) -> dict:
    """A client environment for the team server started in state_dir (as its admin)."""
    password = (state_dir / "team" / "secrets" / "admin_password").read_text().strip()
    return {**team_env, "MLFLOW_TRACKING_USERNAME": "admin", "MLFLOW_TRACKING_PASSWORD": password}


def sample_rows(settings, n: int = 5):
    import pandas as pd

    frame = pd.read_csv(settings.model.data).head(n)
    return frame.drop(columns=[settings.model.target])


def predict(uri: str, ref: str, rows, env: dict):
    import os

    import mlflow.pyfunc

    saved = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")}
    os.environ.update({k: env[k] for k in saved if k in env})
    try:
        mlflow.set_registry_uri(uri)
        mlflow.set_tracking_uri(uri)
        return list(mlflow.pyfunc.load_model(f"models:/{ref}").predict(rows))
    finally:
        for key, value in saved.items():
            os.environ.pop(key, None) if value is None else os.environ.__setitem__(key, value)


@pytest.fixture(scope="module")
def embedded(tmp_path_factory):
    """An embedded workspace with two registered versions: v1 champion and qa, v2 challenger."""
    state_dir = tmp_path_factory.mktemp("embedded")
    env = clean_env(state_dir, MLOPS_MODEL_NAME=MODEL)
    first = run_mlops(env, "pipeline", "run")
    assert f"registered {MODEL} version 1" in first.stdout, first.stdout + first.stderr
    from ml_service.workspace.tracking import connect

    settings = load_settings(env)
    client = connect(settings)
    one = client.get_model_version(MODEL, "1")
    import mlflow

    two = mlflow.register_model(f"models:/{MODEL}/1", MODEL, tags={"run_id": one.run_id, "note": "second"})
    client.set_registered_model_alias(MODEL, "qa", "1")
    client.set_registered_model_alias(MODEL, "challenger", two.version)
    rows = sample_rows(settings)
    return {"env": env, "settings": settings, "rows": rows,
            "expected": predict(settings.tracking_uri, f"{MODEL}@champion", rows, {})}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    state_dir = tmp_path_factory.mktemp("team-m")
    env = start_team(state_dir)
    yield {"env": env, "state_dir": state_dir, "uri": load_settings(env).tracking_uri}
    run_mlops(env, "workspace", "down")


def test_migrate_dry_run_counts_and_writes_nothing(embedded, server):
    env = server_env(embedded["env"], server["state_dir"])
    dry = run_mlops(env, "workspace", "migrate", "--to", server["uri"], "--dry-run")
    assert dry.returncode == 0, dry.stdout + dry.stderr
    counts = parse_counts(dry.stdout)
    assert dry.stdout.startswith("would copy")
    assert counts["runs"] >= 5 and counts["versions"] == 2 and counts["aliases"] == 3
    assert counts["registered models"] == 1 and counts["artifacts"] > 0 and counts["metrics"] > 0
    from ml_service.workspace.tracking import connect

    assert not connect(load_settings(server["env"])).search_registered_models(f"name='{MODEL}'")
    embedded["dry_counts"] = counts


def test_migrate_copies_runs_lineage_versions_and_aliases_and_the_version_serves(embedded, server):
    env = server_env(embedded["env"], server["state_dir"])
    done = run_mlops(env, "workspace", "migrate", "--to", server["uri"])
    assert done.returncode == 0, done.stdout + done.stderr
    counts = parse_counts(done.stdout)
    for key in ("runs", "params", "metrics", "tags", "artifacts", "versions", "registered models"):
        assert counts[key] == embedded["dry_counts"][key], key
    from ml_service.workspace.tracking import connect

    src = connect(embedded["settings"])
    dst = connect(load_settings(server["env"]))
    experiment = src.get_experiment_by_name(embedded["settings"].experiment)
    source_runs = {r.info.run_id: r for r in src.search_runs([experiment.experiment_id])}
    target_experiment = dst.get_experiment_by_name(embedded["settings"].experiment)
    copied = {r.data.tags["mlops.migrated_from"]: r for r in dst.search_runs([target_experiment.experiment_id])}
    assert set(copied) == set(source_runs)
    for old, run in copied.items():
        original = source_runs[old]
        assert run.data.params == original.data.params and run.data.metrics == original.data.metrics
        assert run.info.status == original.info.status and run.info.start_time == original.info.start_time
        parent = original.data.tags.get("mlflow.parentRunId")
        if parent:  # nesting survives with the new ids
            assert run.data.tags["mlflow.parentRunId"] == copied[parent].info.run_id
        assert {a.path for a in dst.list_artifacts(run.info.run_id)} == \
            {a.path for a in src.list_artifacts(old)}
    for number in ("1", "2"):
        before, after = src.get_model_version(MODEL, number), dst.get_model_version(MODEL, number)
        assert after.tags["mlops.migrated_from_version"] == number
        assert after.tags.get("mlops.migrated_from_run_id") == before.run_id
        if before.run_id:  # v2 was registered from v1's files, outside any run
            assert after.run_id == copied[before.run_id].info.run_id  # lineage, with the server's new ids
        assert after.tags["run_id"] == copied[before.tags["run_id"]].info.run_id  # the training run
        if "pipeline_run_id" in before.tags:
            assert after.tags["pipeline_run_id"] == copied[before.tags["pipeline_run_id"]].info.run_id
        assert after.tags.get("note") == before.tags.get("note")
    assert dst.get_registered_model(MODEL).aliases == {"champion": "1", "qa": "1", "challenger": "2"}
    served = predict(server["uri"], f"{MODEL}@champion", embedded["rows"], env)
    assert served == pytest.approx(embedded["expected"])

    again = run_mlops(env, "workspace", "migrate", "--to", server["uri"])  # nothing twice
    assert again.returncode == 0 and parse_counts(again.stdout)["runs"] == 0
    assert parse_counts(again.stdout)["versions"] == 0
    assert len(dst.search_model_versions(f"name='{MODEL}'")) == 2


def test_migrate_refuses_bad_targets_with_one_line(embedded, server, tmp_path):
    env = server_env(embedded["env"], server["state_dir"])
    nowhere = run_mlops(env, "workspace", "migrate", "--to", "http://127.0.0.1:9")
    assert nowhere.returncode == 1 and "does not answer" in nowhere.stderr and "Traceback" not in nowhere.stderr
    wrong = run_mlops({**env, "MLFLOW_TRACKING_PASSWORD": "not-the-password"}, "workspace", "migrate",
                      "--to", server["uri"])
    assert wrong.returncode == 1 and "refuses this user" in wrong.stderr
    empty = run_mlops(clean_env(tmp_path / "nothing"), "workspace", "migrate", "--to", server["uri"])
    assert empty.returncode == 2 and "no embedded workspace to migrate" in empty.stderr


def test_backup_then_restore_into_a_fresh_cluster_serves_and_keeps_users(embedded, server, tmp_path_factory):
    migrated = run_mlops(server_env(embedded["env"], server["state_dir"]), "workspace", "migrate", "--to",
                         server["uri"])  # the server holds the models (a no-op after the migrate test)
    assert migrated.returncode == 0, migrated.stdout + migrated.stderr
    added = run_mlops(server["env"], "workspace", "user", "add", "carol")
    assert added.returncode == 0, added.stderr
    carol = Path(added.stdout.split("password in ", 1)[1].split(" ", 1)[0]).read_text().strip()
    target = tmp_path_factory.mktemp("backup") / "b1"
    saved = run_mlops(server["env"], "workspace", "backup", str(target))
    assert saved.returncode == 0, saved.stdout + saved.stderr
    manifest = json.loads((target / "manifest.json").read_text())
    assert manifest["artifact_files"] > 0 and (target / "mlflow.dump").stat().st_size > 0
    for value in (server["state_dir"] / "team" / "secrets").iterdir():  # no secret in a backup
        if value.is_file() and value.name != "pgpass":
            secret = value.read_text().strip().encode()
            assert all(secret not in p.read_bytes() for p in target.rglob("*") if p.is_file())
    again = run_mlops(server["env"], "workspace", "backup", str(target))
    assert again.returncode == 2 and "is not empty" in again.stderr

    fresh_dir = tmp_path_factory.mktemp("team-r")
    fresh = clean_env(fresh_dir)
    try:
        restored = run_mlops(fresh, "workspace", "restore", str(target))
        assert restored.returncode == 0, restored.stdout + restored.stderr
        uri = load_settings(fresh).tracking_uri
        assert uri != server["uri"]
        from ml_service.workspace import team

        assert team.authenticated(uri, "carol", carol, timeout=120)  # users and their passwords came back
        admin = server_env(fresh, fresh_dir)
        assert team.authenticated(uri, "admin", admin["MLFLOW_TRACKING_PASSWORD"], timeout=120)  # its own admin
        served = predict(uri, f"{MODEL}@champion", embedded["rows"], admin)
        assert served == pytest.approx(embedded["expected"])
        from ml_service.workspace.tracking import connect

        client = connect(load_settings(fresh))
        assert client.get_registered_model(MODEL).aliases == {"champion": "1", "qa": "1", "challenger": "2"}
    finally:
        run_mlops(fresh, "workspace", "down")
    broken = tmp_path_factory.mktemp("broken")
    bad = run_mlops(fresh, "workspace", "restore", str(broken))
    assert bad.returncode == 2 and "not a workspace backup" in bad.stderr


def test_the_real_server_files_validate_and_the_server_script_serves(server, tmp_path):
    """environment_setup/team/: compose.yml against the compose spec, the systemd units with systemd-analyze,
    and mlflow-server.sh (what compose and systemd run) started for real on this cluster, secrets from files."""
    import shutil
    import socket
    import subprocess
    import sys
    import time

    team_dir = ROOT / "environment_setup" / "team"
    checked = subprocess.run([str(Path(sys.executable).parent / "check-jsonschema"), "--builtin-schema",
                              "vendor.compose-spec", str(team_dir / "compose.yml")], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    if shutil.which("systemd-analyze") is None:
        pytest.fail("systemd-analyze is missing: apt-get install -y systemd")
    for unit in sorted((team_dir / "systemd").glob("*.service")) + sorted((team_dir / "systemd").glob("*.timer")):
        verified = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True)
        assert verified.returncode == 0 and "rror" not in verified.stderr, unit.name + verified.stderr

    from ml_service.workspace import team

    state = json.loads((server["state_dir"] / "team" / "team.json").read_text())
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "PG"))}
    env.update({"MLFLOW_SECRETS_DIR": str(server["state_dir"] / "team" / "secrets"), "MLFLOW_DB_PORT":
                str(state["pg_port"]), "MLFLOW_PORT": str(port), "MLFLOW_WORKERS": "1",
                "MLFLOW_STATE_DIR": str(tmp_path), "MLFLOW_BIN": str(Path(sys.executable).parent / "mlflow")})
    log = open(tmp_path / "server.log", "w")
    process = subprocess.Popen(["bash", str(team_dir / "mlflow-server.sh")], env=env, stdout=log,
                               stderr=subprocess.STDOUT, start_new_session=True)
    try:
        uri, deadline = f"http://127.0.0.1:{port}", time.monotonic() + 300
        password = (server["state_dir"] / "team" / "secrets" / "admin_password").read_text().strip()
        while not team.authenticated(uri, "admin", password, timeout=30):
            assert process.poll() is None and time.monotonic() < deadline, (tmp_path / "server.log").read_text()[-3000:]
            time.sleep(1)
        assert not team.authenticated(uri, "admin", "wrong-password")
        ini = (tmp_path / "basic_auth.ini").read_text()
        assert "postgresql+psycopg2://mlflow@127.0.0.1:" in ini and password not in ini
        assert password not in (tmp_path / "server.log").read_text()
    finally:
        os.killpg(process.pid, 15)
        process.wait(60)
        log.close()
