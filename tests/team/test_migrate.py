"""Moving to the team workspace and keeping it: `mlops workspace migrate` from a real embedded sqlite
workspace into a real MLflow server on PostgreSQL, then `backup` and `restore` into a fresh cluster.
Each time a model version must still serve: loaded with mlflow.pyfunc from the server, it predicts
what the original predicts.

The pipeline's runs all end FINISHED and it registers two versions, so a store made by hand is migrated too
(in-process, to MLflow's own server on sqlite, which starts quicker): a run in every status (issue 29:
`workspace migrate` copied every run as FINISHED and no test saw it), metric histories of several steps,
and eleven versions (copied in the order of their numbers, never as text: 10 and 11 before 2 would
renumber them on the server).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from ml_service.config import load_settings
from tests.conftest import ROOT, fresh_store
from tests.support.procs import session_commands
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
        from ml_service.team import server as team

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

    from ml_service.team import server as team

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
        beside = session_commands(process.pid)  # no MLflow job runner beside the server (the script turns it off)
        assert not [command for command in beside if "huey" in command or "_job_runner" in command], beside
    finally:
        os.killpg(process.pid, 15)
        process.wait(60)
        log.close()


STATUSES = ("FINISHED", "FAILED", "KILLED", "RUNNING")
CRAFTED_MODEL, VERSIONS = "team_migrate_versions", 11
T0 = 1_700_000_000_000  # ms


@pytest.fixture(scope="module")
def plain_server(tmp_path_factory):
    """MLflow's own server on a sqlite store (made from an empty one) with proxied artifacts, one worker, no users:
    quicker to start than the team workspace, and migrate talks to either through the same MLflow API."""
    import socket
    import subprocess
    import sys
    import time

    from ml_service.team import server as team

    base = tmp_path_factory.mktemp("plain-server")
    store = fresh_store(base / "server.db")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    uri = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_TRACKING_")}
    log = open(base / "server.log", "w")
    process = subprocess.Popen([sys.executable, "-m", "mlflow", "server", "--backend-store-uri", store,
                                "--serve-artifacts", "--artifacts-destination", str(base / "artifacts"),
                                "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
                               env={**env, "MLFLOW_DISABLE_TELEMETRY": "true", **team.NO_JOB_RUNNER}, stdout=log,
                               stderr=subprocess.STDOUT, start_new_session=True)
    try:
        while not team.answers(uri):  # a wait, not a timing assertion: the server's start depends on the machine
            assert process.poll() is None, (base / "server.log").read_text()[-3000:]
            time.sleep(0.5)
        yield uri
    finally:
        os.killpg(process.pid, 15)
        process.wait(60)
        log.close()


@pytest.fixture
def crafted(tmp_path):
    """A source store made by hand: one run in each status (RUNNING never ended), each with a param, tags and a
    three-step metric history, a nested run, an artifact, a registered model with 11 versions and 2 aliases."""
    import mlflow
    from mlflow.entities import Metric, Param, RunTag

    uri = fresh_store(tmp_path / "source.db")
    client = mlflow.MlflowClient(uri, uri)
    experiment = client.create_experiment("migrate-every-status", artifact_location=str(tmp_path / "artifacts"),
                                          tags={"team": "alpha"})
    runs = {}
    for number, status in enumerate(STATUSES):
        run = client.create_run(experiment, start_time=T0 + number * 1000, run_name=f"run-{status.lower()}",
                                tags={"kind": status.lower()})
        metrics = [Metric("loss", 10.0 / (step + 1) + number, T0 + 500 + step, step) for step in range(3)]
        client.log_batch(run.info.run_id, metrics=metrics, params=[Param("alpha", str(number / 10))],
                         tags=[RunTag("note", f"number {number}")])
        if status != "RUNNING":
            client.set_terminated(run.info.run_id, status, end_time=T0 + 60_000 + number)
        runs[status] = run.info.run_id
    child = client.create_run(experiment, start_time=T0 + 9000, tags={"mlflow.parentRunId": runs["FINISHED"]},
                              run_name="child")
    client.set_terminated(child.info.run_id, "FAILED", end_time=T0 + 9500)
    runs["child"] = child.info.run_id
    (tmp_path / "report.txt").write_text("a report\n")
    client.log_artifact(runs["KILLED"], str(tmp_path / "report.txt"))
    files = tmp_path / "model"
    files.mkdir()
    (files / "model.txt").write_text("weights\n")
    client.create_registered_model(CRAFTED_MODEL)
    for number in range(1, VERSIONS + 1):
        client.create_model_version(CRAFTED_MODEL, str(files), run_id=runs["FINISHED"] if number == 1 else None,
                                    tags={"n": str(number)})
    client.set_registered_model_alias(CRAFTED_MODEL, "champion", "2")
    client.set_registered_model_alias(CRAFTED_MODEL, "newest", str(VERSIONS))
    return uri, client, runs


def test_migrate_copies_each_runs_status_history_params_and_tags_and_keeps_version_numbers(crafted, plain_server,
                                                                                           tmp_path, monkeypatch):
    import mlflow

    from ml_service.team import migrate

    uri, src, runs = crafted
    server = {"uri": plain_server}
    for key in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
        monkeypatch.delenv(key, raising=False)
    settings = load_settings(clean_env(tmp_path / "state"))
    source_runs = [src.get_run(run_id) for run_id in runs.values()]
    expected = {"experiments": 1, "runs": 5, "params": 4, "metrics": 12, "artifacts": 1,
                "tags": sum(len(r.data.tags) for r in source_runs), "registered models": 1, "versions": VERSIONS,
                "aliases": 2}
    assert migrate.migrate(settings, server["uri"], dry_run=True, source=uri) == expected
    assert migrate.migrate(settings, server["uri"], source=uri) == expected

    dst = mlflow.MlflowClient(server["uri"], server["uri"])
    target = dst.get_experiment_by_name("migrate-every-status")
    assert target.tags.get("team") == "alpha"
    copied = {r.data.tags[migrate.FROM_RUN]: r for r in dst.search_runs([target.experiment_id])}
    assert set(copied) == set(runs.values())
    for original in source_runs:
        run = copied[original.info.run_id]
        assert run.info.status == original.info.status, original.info.run_name
        assert (run.info.start_time, run.info.end_time) == (original.info.start_time, original.info.end_time)
        assert run.info.run_name == original.info.run_name and run.data.params == original.data.params
        parent = original.data.tags.get(migrate.PARENT)
        for key, value in original.data.tags.items():
            assert run.data.tags[key] == (copied[parent].info.run_id if key == migrate.PARENT else value), key
        for key in original.data.metrics:
            history = [(m.step, m.value, m.timestamp) for m in src.get_metric_history(original.info.run_id, key)]
            assert [(m.step, m.value, m.timestamp) for m in dst.get_metric_history(run.info.run_id, key)] == history
    assert [a.path for a in dst.list_artifacts(copied[runs["KILLED"]].info.run_id)] == ["report.txt"]
    assert {copied[runs[s]].info.status for s in STATUSES} == set(STATUSES)  # the fixture really has each status

    for number in range(1, VERSIONS + 1):
        version = dst.get_model_version(CRAFTED_MODEL, str(number))
        assert version.tags["n"] == version.tags[migrate.FROM_VERSION] == str(number)
    assert dst.get_model_version(CRAFTED_MODEL, "1").run_id == copied[runs["FINISHED"]].info.run_id
    assert dst.get_registered_model(CRAFTED_MODEL).aliases == {"champion": "2", "newest": str(VERSIONS)}

    again = migrate.migrate(settings, server["uri"], source=uri)  # nothing twice
    assert again == {key: 0 for key in expected}
    assert len(dst.search_runs([target.experiment_id])) == 5
    assert len(dst.search_model_versions(f"name='{CRAFTED_MODEL}'")) == VERSIONS
