"""The team workspace for real: Debian's PostgreSQL 15, MLflow's own server with basic auth and proxied
artifacts, started by `mlops workspace up` in a temp state dir, and the whole flow against it.

- up / status / use / down, secrets kept out of every log and output;
- the flow a team runs (data tests, publish, retrain, release to QA in Docker, production approval);
- two clones of the repository (carrying this working tree), two users, one server: concurrent retrains end
  with one champion (the server-side registration lock), each sees the other's work, and a user with READ on the
  registered model can neither delete a version nor move an alias (MLflow's permissions), while the
  platform's own registry guard still refuses to delete a live version for them.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from ml_service.config import load_settings
from tests.conftest import ROOT
from tests.support.procs import session_commands

pytestmark = [pytest.mark.integration, pytest.mark.slow]
MODEL = "team_flow_model"


def require_postgres() -> None:
    """Fail (never skip) with the install command when PostgreSQL's server binaries are missing."""
    from ml_service.team import postgres

    try:
        postgres.bin_dir()
    except postgres.PostgresError as exc:
        pytest.fail(str(exc))


def clean_env(state_dir: Path, root: Path = ROOT, **extra: str) -> dict[str, str]:
    """The environment of one checkout: its own root and state dir, no inherited workspace or user."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLOPS_", "MLFLOW_TRACKING_"))}
    env.update({"MLOPS_ROOT": str(root), "MLOPS_STATE_DIR": str(state_dir), "MLFLOW_DISABLE_TELEMETRY": "true",
                **extra})
    return env


def run_mlops(env: dict[str, str], *args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ml_service.cli", *args], capture_output=True, text=True,
                          cwd=env["MLOPS_ROOT"], env=env, timeout=timeout)


def start_team(state_dir: Path, outputs: list | None = None) -> dict[str, str]:
    """`mlops workspace up` in state_dir; the environment of that checkout (the command's output to outputs)."""
    require_postgres()
    env = clean_env(state_dir)
    started = run_mlops(env, "workspace", "up")
    assert started.returncode == 0, started.stdout + started.stderr
    if outputs is not None:
        outputs.append(started.stdout + started.stderr)
    return env


def stored_secrets(state_dir: Path) -> list[str]:
    folder = state_dir / "team" / "secrets"
    return [p.read_text().strip() for p in folder.iterdir() if p.is_file() and p.name != "pgpass"]


@pytest.fixture(scope="module")
def team(tmp_path_factory):
    """A team workspace started by `mlops workspace up` (stopped by `mlops workspace down` at the end)."""
    state_dir = tmp_path_factory.mktemp("team-a")
    outputs = []
    env = start_team(state_dir, outputs)
    yield {"env": env, "state_dir": state_dir, "outputs": outputs}
    run_mlops(env, "workspace", "down")


def test_up_starts_postgres_and_an_authenticated_mlflow_server_and_points_this_checkout_at_it(team):
    env, state_dir = team["env"], team["state_dir"]
    status = run_mlops(env, "workspace", "status", "--json")
    assert status.returncode == 0, status.stderr
    report = json.loads(status.stdout)
    assert report["backend"] == "postgresql" and report["answers"] is True and report["authenticated"] is True
    assert report["tracking_uri"].startswith("http://127.0.0.1:") and report["user"] == "admin"
    assert report["team_server"]["postgres"]["running"] is True
    settings = load_settings(env)
    assert settings.tracking_uri == report["tracking_uri"]
    # the server really is MLflow on PostgreSQL: its tables live in the cluster
    import psycopg2

    connection = psycopg2.connect(host="127.0.0.1", port=report["team_server"]["postgres"]["port"], user="mlflow",
                                  dbname="mlflow", passfile=str(state_dir / "team" / "secrets" / "pgpass"))
    with connection, connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM information_schema.tables WHERE table_name IN "
                       "('runs', 'registered_models', 'model_versions')")
        assert cursor.fetchone()[0] == 3
    connection.close()
    # an anonymous client is refused: users and permissions are on
    import urllib.error
    import urllib.request

    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"{report['tracking_uri']}/api/2.0/mlflow/experiments/search?max_results=1")
    assert refused.value.code == 401
    for path in (state_dir / "team" / "secrets").iterdir():
        assert path.stat().st_mode & 0o077 == 0, path  # 0600
    # no MLflow job runner beside it (the platform runs no MLflow job; each consumer is a process polling for ever)
    server = session_commands(json.loads((state_dir / "team" / "team.json").read_text())["pid"])
    assert any("mlflow" in command and " server " in command for command in server), server
    assert not [command for command in server if "huey" in command or "_job_runner" in command], server
    team["outputs"].append(status.stdout + status.stderr)


def test_use_embedded_points_back_and_use_team_points_at_the_server_again(team):
    env = team["env"]
    embedded = run_mlops(env, "workspace", "use", "embedded")
    assert embedded.returncode == 0, embedded.stderr
    report = json.loads(run_mlops(env, "workspace", "status", "--json").stdout)
    assert report["backend"] == "sqlite" and report["tracking_uri"].startswith("sqlite:///")
    assert report["user"] is None
    again = run_mlops(env, "workspace", "use", "team")
    assert again.returncode == 0, again.stderr
    assert json.loads(run_mlops(env, "workspace", "status", "--json").stdout)["backend"] == "postgresql"
    bad = run_mlops(env, "workspace", "use", "ftp://nowhere")
    assert bad.returncode == 2 and "not an MLflow server URL" in bad.stderr and "Traceback" not in bad.stderr
    team["outputs"] += [embedded.stdout, again.stdout, bad.stderr]


@pytest.mark.docker
def test_the_flow_runs_against_the_team_workspace_up_to_qa_and_production(team, docker_engine):
    env = {**team["env"], "MLOPS_MODEL_NAME": MODEL, "MLOPS_USER": "team@example.com"}
    try:
        # the build's work on the workspace (its lint and unit tests touch none): data tests, publish
        for args in (("data", "validate"), ("pipeline", "publish")):
            done = run_mlops(env, *args)
            assert done.returncode == 0, done.stdout + done.stderr
            team["outputs"].append(done.stdout + done.stderr)
        project = load_settings(env).project
        retrain = run_mlops(env, "ci", "run", f"{project}-retrain", timeout=1500)
        team["outputs"].append(retrain.stdout + retrain.stderr)
        assert retrain.returncode == 0, retrain.stdout + retrain.stderr
        assert f"retrain: registered {MODEL} version 1" in retrain.stdout
        assert "Smoke test QA  Succeeded" in retrain.stdout
        assert f"QA now serves {MODEL} version 1 at http://127.0.0.1:" in retrain.stdout
        assert "is waiting for approval of stage Production" in retrain.stdout
        approved = run_mlops(env, "ci", "approve", "--comment", "team ship")
        team["outputs"].append(approved.stdout + approved.stderr)
        assert approved.returncode == 0 and "succeeded" in approved.stdout, approved.stdout + approved.stderr

        # everything landed on the server: the registry, the aliases and the proxied artifacts
        from ml_service.workspace.tracking import connect

        settings = load_settings(env)
        client = connect(settings)
        champion = client.get_model_version_by_alias(MODEL, "champion")
        assert str(champion.version) == "1" and client.get_model_version_by_alias(MODEL, "qa").version == "1"
        assert champion.tags["run_id"]
        artifacts = Path(json.loads(run_mlops(env, "workspace", "status", "--json").stdout)
                         ["team_server"]["artifacts"])
        assert any(p.name == "MLmodel" for p in artifacts.rglob("MLmodel"))  # the server stored the files
        listing = json.loads(run_mlops(env, "deploy", "list", "--json").stdout)
        assert any(d["model"] == MODEL and d["environment"] == "qa" and d["status"] == "live" for d in listing)
    finally:
        for container in docker_engine.containers.list(all=True, filters={"label": f"mlops.model.name={MODEL}"}):
            container.remove(force=True)
        for image in docker_engine.images.list(name=f"mlops/{MODEL}"):
            docker_engine.images.remove(image.id, force=True)


def clone(tmp_path: Path, name: str) -> Path:
    """A real git clone of this repository, as a second team member has it, carrying this working tree's files
    (changed, added or deleted and not committed yet): the code under test is the tree's, not HEAD's."""
    import shutil

    target = tmp_path / name
    subprocess.run(["git", "clone", "-q", "--no-hardlinks", str(ROOT), str(target)], check=True, timeout=300)
    listed = subprocess.run(["git", "-C", str(ROOT), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            capture_output=True, check=True, timeout=300).stdout.decode()
    for rel in filter(None, listed.split("\0")):
        source, copy = ROOT / rel, target / rel
        if source.is_file() or source.is_symlink():
            copy.parent.mkdir(parents=True, exist_ok=True)
            copy.unlink(missing_ok=True)
            shutil.copy2(source, copy, follow_symlinks=False)
        elif not source.exists():  # deleted in the working tree
            copy.unlink(missing_ok=True)
    return target


class UserClient:
    """An MlflowClient acting as one user (MLflow's client reads the user from the environment per call)."""

    def __init__(self, settings):
        import mlflow

        self.settings, self.client = settings, mlflow.MlflowClient(settings.tracking_uri, settings.tracking_uri)

    def __getattr__(self, name):
        method = getattr(self.client, name)

        def call(*args, **kwargs):
            saved = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")}
            os.environ.update(MLFLOW_TRACKING_USERNAME=self.settings.tracking_username,
                              MLFLOW_TRACKING_PASSWORD=self.settings.tracking_password)
            try:
                return method(*args, **kwargs)
            finally:
                for key, value in saved.items():
                    os.environ.pop(key, None) if value is None else os.environ.__setitem__(key, value)
        return call


def test_two_clones_two_users_one_server(team, tmp_path):
    admin_env = team["env"]
    uri = load_settings(admin_env).tracking_uri
    users = {}
    for name in ("alice", "bob"):
        added = run_mlops(admin_env, "workspace", "user", "add", name)
        assert added.returncode == 0, added.stderr
        users[name] = Path(added.stdout.split("password in ", 1)[1].split(" ", 1)[0])
        team["outputs"].append(added.stdout + added.stderr)
    # everyone reads by default; alice maintains every model, bob contributes to this one
    for grant in (("alice", "EDIT", "--experiment", "*"), ("alice", "EDIT", "--model", "*"),
                  ("bob", "EDIT", "--experiment", "*"), ("bob", "EDIT", "--model", "team_shared_model")):
        granted = run_mlops(admin_env, "workspace", "grant", *grant)
        assert granted.returncode == 0, granted.stderr
    clones = {}
    for name in ("alice", "bob"):
        root = clone(tmp_path, f"clone-{name}")
        for module in ("team/server.py", "workspace/server_lock.py", "workspace/registry.py"):  # the working
            assert (root / "ml_service" / module).read_bytes() == (ROOT / "ml_service" / module).read_bytes()  # tree
        env = clean_env(tmp_path / f"state-{name}", root=root, MLOPS_MODEL_NAME="team_shared_model")
        used = run_mlops(env, "workspace", "use", uri, "--username", name, "--password-file", str(users[name]))
        assert used.returncode == 0, used.stderr
        assert json.loads(run_mlops(env, "workspace", "status", "--json").stdout)["authenticated"] is True
        clones[name] = env

    def retrain(name: str) -> dict:
        out = tmp_path / f"{name}.json"
        done = run_mlops(clones[name], "pipeline", "run", "--no-reuse", "--output-json", str(out))
        assert done.returncode == 0, done.stdout + done.stderr
        team["outputs"].append(done.stdout + done.stderr)
        return {**json.loads(out.read_text()), "stdout": done.stdout}

    with ThreadPoolExecutor(2) as pool:  # both retrain at the same time against the same server
        results = dict(zip(("alice", "bob"), pool.map(retrain, ("alice", "bob"))))

    alice, bob = (UserClient(load_settings(clones[n])) for n in ("alice", "bob"))
    # each sees the other's runs
    for result in results.values():
        assert alice.get_run(result["run_id"]).info.status == "FINISHED"
        assert bob.get_run(result["run_id"]).info.status == "FINISHED"
    # identical code and data: the first registration wins, the other is not strictly better (never a second
    # champion), whoever got there first
    versions = bob.search_model_versions("name='team_shared_model'")
    assert len(versions) == 1, [r["stdout"] for r in results.values()]
    champion = alice.get_model_version_by_alias("team_shared_model", "champion")
    assert champion.version == versions[0].version == "1"
    registered = [n for n, r in results.items() if r.get("registered_version")]
    assert len(registered) == 1
    loser = results[{"alice": "bob", "bob": "alice"}[registered[0]]]
    assert "not promoted" in loser["stdout"] and "champion v1" in loser["stdout"]
    held = "name='mlops-lock.team_shared_model' and tags.`mlops.lock.state` = 'held'"
    assert not alice.search_model_versions(held)  # the lock was released: no ticket holds it

    # the admin makes bob a reader of the model (his EDIT replaced): MLflow refuses his delete and alias moves
    granted = run_mlops(admin_env, "workspace", "grant", "bob", "READ", "--model", "team_shared_model")
    assert granted.returncode == 0, granted.stderr
    from mlflow.exceptions import MlflowException

    with pytest.raises(MlflowException) as no_alias:
        bob.set_registered_model_alias("team_shared_model", "qa", "1")
    assert no_alias.value.get_http_status_code() == 403
    with pytest.raises(MlflowException) as no_delete:
        bob.delete_model_version("team_shared_model", "1")
    assert no_delete.value.get_http_status_code() == 403
    assert bob.get_model_version("team_shared_model", "1").version == "1"  # still there, still readable
    # the platform's guard holds for him too: a version holding an alias is never deleted
    guarded = run_mlops(clones["bob"], "model", "delete", "team_shared_model:1")
    assert guarded.returncode == 1 and "holds alias(es) champion" in guarded.stderr, guarded.stderr
    # alice (EDIT by default) may move an alias; the champion is untouched by all of this
    alice.set_registered_model_alias("team_shared_model", "qa", "1")
    assert alice.get_model_version_by_alias("team_shared_model", "champion").version == "1"


def test_secrets_never_reach_a_log_or_an_output(team):
    state_dir = team["state_dir"]
    secrets = stored_secrets(state_dir)
    assert len(secrets) >= 3
    texts = list(team["outputs"])
    for path in state_dir.rglob("*"):
        if path.is_file() and "secrets" not in path.parts and "pgdata" not in path.parts and \
                path.suffix in (".log", ".yml", ".ini", ".json", ".txt", ""):
            texts.append(path.read_text(errors="replace"))
    assert texts
    for text in texts:
        for value in secrets:
            assert value not in text
    override = (state_dir / "local.yml").read_text()
    assert "password_file" in override and "admin_password" in override  # a path to the secret, not the secret


def test_down_stops_the_server_and_postgres_and_status_says_so(team):
    env = team["env"]
    stopped = run_mlops(env, "workspace", "down")
    assert stopped.returncode == 0 and "MLflow server" in stopped.stdout and "PostgreSQL" in stopped.stdout
    status = run_mlops(env, "workspace", "status", "--json")
    report = json.loads(status.stdout)
    assert status.returncode == 3 and report["answers"] is False
    assert report["team_server"]["running"] is False and report["team_server"]["postgres"]["running"] is False
    again = run_mlops(env, "workspace", "up")  # the same data comes back
    assert again.returncode == 0, again.stdout + again.stderr
    from ml_service.workspace.tracking import connect

    assert connect(load_settings(env)).search_model_versions("name='team_shared_model'")


def test_a_broken_local_override_is_a_clear_error_naming_the_file(tmp_path):
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    override = state_dir / "local.yml"
    env = clean_env(state_dir)
    override.write_text("tracking_uri: http://127.0.0.1:9\nusername: bob\npassword_file: /nonexistent/bob\n")
    missing = run_mlops(env, "workspace", "status")
    assert missing.returncode == 2 and str(override) in missing.stderr and "does not exist" in missing.stderr
    loose = tmp_path / "bob.password"
    loose.write_text("s3cret-value\n")
    loose.chmod(0o644)
    override.write_text(f"tracking_uri: http://127.0.0.1:9\nusername: bob\npassword_file: {loose}\n")
    refused = run_mlops(env, "workspace", "status")
    assert refused.returncode == 2 and "readable by others" in refused.stderr and "s3cret" not in refused.stderr
    override.write_text("tracking_uri: [not, a, string\n")
    malformed = run_mlops(env, "workspace", "status")
    assert malformed.returncode == 2 and str(override) in malformed.stderr and "Traceback" not in malformed.stderr
    loose.chmod(0o600)
    override.write_text(f"tracking_uri: http://127.0.0.1:9\nusername: bob\npassword_file: {loose}\n")
    down = run_mlops(env, "workspace", "status", "--json")  # nothing listens there: says so, exit 3
    assert down.returncode == 3 and json.loads(down.stdout)["answers"] is False
    assert json.loads(down.stdout)["user"] == "bob" and "s3cret" not in down.stdout
