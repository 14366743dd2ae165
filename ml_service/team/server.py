"""The team workspace on this machine: an MLflow server on PostgreSQL, with proxied artifacts and users.

`mlops workspace up` starts, under `<state_dir>/team/`: a PostgreSQL cluster on 127.0.0.1 (databases
`mlflow` for runs and the registry, `mlflow_auth` for users and permissions), then MLflow's own server
with `--backend-store-uri postgresql://...`, `--serve-artifacts --artifacts-destination team/artifacts`
and the `basic-auth` app. The database, admin and Flask passwords are generated on first start and
kept in `team/secrets/` (0700, files 0600); they never reach a command line, a log or the screen.
It then points this checkout at the server (`<state_dir>/local.yml`, which `mlops workspace use`
rewrites).
"""
from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from ml_service.config import LOCAL_OVERRIDE, Settings
from ml_service.errors import MLOpsError, UsageError
from ml_service.team import postgres

ADMIN = "admin"
DATABASES = ("mlflow", "mlflow_auth")
AUTH_CACHE_SECONDS = 30
# Everyone reads everything; who trains gets EDIT (`mlops workspace grant NAME EDIT --experiment '*'`).
# Not EDIT: MLflow floors every grant at the default, so with EDIT nobody could be held to READ.
DEFAULT_PERMISSION = "READ"
WORKER_HEALTHCHECK_SECONDS = 120  # how long uvicorn waits for a server worker's answer before it kills it


class TeamError(MLOpsError):
    """The team workspace could not be started, stopped or reached."""


@dataclass(frozen=True)
class TeamPaths:
    """Where the team workspace of a state dir keeps its parts."""

    base: Path

    @property
    def pgdata(self) -> Path:
        return self.base / "pgdata"

    @property
    def artifacts(self) -> Path:
        return self.base / "artifacts"

    @property
    def secrets(self) -> Path:
        return self.base / "secrets"

    @property
    def logs(self) -> Path:
        return self.base / "logs"

    @property
    def state(self) -> Path:
        return self.base / "team.json"

    @property
    def auth_config(self) -> Path:
        return self.base / "auth.ini"

    @property
    def passfile(self) -> Path:
        return self.secrets / "pgpass"

    def secret(self, name: str) -> Path:
        return self.secrets / name


def paths(settings: Settings) -> TeamPaths:
    """The team workspace's folders under the settings' state dir."""
    return TeamPaths(settings.state_dir / "team")


def private_artifacts(folder: Path) -> None:
    """The artifact store readable by this user only: folders 0700, files 0600 (also what an earlier
    version left 755/644). Models are pickles and data: other accounts of the machine read them through
    the server, with its permissions, never from the disk."""
    folder.chmod(0o700)
    for root, folders, files in os.walk(folder):
        for name in folders:
            os.chmod(os.path.join(root, name), 0o700, follow_symlinks=False)
        for name in files:
            path = os.path.join(root, name)
            if not os.path.islink(path):
                os.chmod(path, 0o600)


def write_secret(path: Path, value: str) -> None:
    """Write a secret file readable by this user only (0600, in a 0700 folder)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.parent.chmod(0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # the mode of open() holds for a new file only: one left 0644 by hand is tightened too
    with os.fdopen(fd, "w") as handle:
        handle.write(value + "\n")


def secret(team: TeamPaths, name: str) -> str:
    """The stored secret name, generated (and stored 0600) on first use."""
    path = team.secret(name)
    if not path.is_file():
        write_secret(path, secrets.token_urlsafe(24))
    return path.read_text().strip()


def mask(text: str, team: TeamPaths) -> str:
    """text with every stored secret replaced by ***."""
    if team.secrets.is_dir():
        for path in team.secrets.rglob("*"):
            if path.is_file() and path.name != "pgpass":
                value = path.read_text().strip()
                if value:
                    text = text.replace(value, "***")
    return text


def free_port(preferred: int = 0) -> int:
    """preferred if it is free on 127.0.0.1, else any free port."""
    for port in (preferred, 0) if preferred else (0,):
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return probe.getsockname()[1]
    raise TeamError("no free port on 127.0.0.1")


def read_state(team: TeamPaths) -> dict:
    """team.json: ports, server pid, tracking URI ({} before the first start)."""
    return json.loads(team.state.read_text()) if team.state.is_file() else {}


def _server_pid(state: dict) -> int | None:
    """The MLflow server's pid when that process still runs and is ours."""
    pid = state.get("pid")
    if not pid:
        return None
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return None
    return pid if b"server" in cmdline and str(state.get("port")).encode() in cmdline else None


# MLflow 3's server starts a job runner and a Huey consumer per kind of GenAI job (scorers, prompt optimization,
# trace rollups), each a Python process that imports MLflow and polls while the server lives: the platform runs none
# of those jobs, and they were half the CPU of tests/team/test_migrate.py (253 s -> 134 s without them).
NO_JOB_RUNNER = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}


def _server_command(team: TeamPaths, pg_port: int, port: int, workers: int) -> list[str]:
    # uvicorn kills a worker that does not answer its health check within 5 s, and a worker still importing MLflow
    # on a busy machine cannot: it was killed and restarted for ever. WORKER_HEALTHCHECK_SECONDS gives it time.
    return [sys.executable, "-m", "mlflow", "server",
            "--backend-store-uri", postgres.url(pg_port, "mlflow"),
            "--serve-artifacts", "--artifacts-destination", str(team.artifacts),
            "--app-name", "basic-auth", "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers),
            "--uvicorn-opts", f"--timeout-worker-healthcheck {WORKER_HEALTHCHECK_SECONDS}"]


def _write_auth_config(team: TeamPaths, pg_port: int) -> None:
    """MLflow's basic-auth config: users and permissions in PostgreSQL; no secret in it."""
    team.auth_config.write_text(
        "[mlflow]\n"
        f"default_permission = {DEFAULT_PERMISSION}\n"
        f"database_uri = {postgres.url(pg_port, 'mlflow_auth')}\n"
        f"admin_username = {ADMIN}\n"
        # MLflow's basic auth, and a run's user is who created it (team/server_auth.py).
        "authorization_function = ml_service.team.server_auth:authenticate\n"
        "grant_default_workspace_access = true\n"
        # A checked password is remembered for 30 s per worker: without it every request hashes it again
        # (PBKDF2, about 0.3-1.5 s of CPU; bench/team.py). A password change made elsewhere waits that long.
        f"auth_cache_ttl_seconds = {AUTH_CACHE_SECONDS}\n")


def answers(tracking_uri: str, timeout: float = 3.0) -> bool:
    """True when an MLflow server answers /health at tracking_uri with 200."""
    from ml_service.workspace.tracking import health

    return health(tracking_uri, timeout)[0] == 200


def _wait_until_up(process: subprocess.Popen, uri: str, log: Path, team: TeamPaths, seconds: float = 240) -> None:
    """Until the server answers an authenticated API call (its workers start after /health answers)."""
    deadline = time.monotonic() + seconds
    password = team.secret("admin_password").read_text().strip()
    while not (answers(uri) and authenticated(uri, ADMIN, password, timeout=30)):
        if process.poll() is not None or time.monotonic() > deadline:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
            tail = mask(log.read_text(errors="replace")[-1500:], team) if log.exists() else ""
            raise TeamError(f"the MLflow server did not start on {uri} (log: {log}):\n{tail}")
        time.sleep(0.3)


def up(settings: Settings, workers: int = 2) -> dict:
    """Start (or keep) the team workspace and point this checkout at it; returns team.json's content."""
    team = paths(settings)
    for folder in (team.base, team.artifacts, team.logs):
        folder.mkdir(parents=True, exist_ok=True)
    private_artifacts(team.artifacts)
    state = read_state(team)
    db_password = secret(team, "db_password")
    admin_password = secret(team, "admin_password")
    flask_key = secret(team, "flask_secret_key")
    if not (team.pgdata / "PG_VERSION").exists():
        postgres.init(team.pgdata, db_password)
    if postgres.is_running(team.pgdata):
        pg_port = postgres.running_port(team.pgdata)
    else:
        pg_port = free_port(state.get("pg_port", 0))
        postgres.start(team.pgdata, pg_port, team.logs / "postgres.log")
    postgres.write_passfile(team.passfile, pg_port, db_password)
    for database in DATABASES:
        postgres.create_database(pg_port, team.passfile, database)
    state.update(pg_port=pg_port, backend="postgresql", artifacts=str(team.artifacts))
    if _server_pid(state) is None or not answers(state.get("tracking_uri", "")):
        port = free_port(state.get("port", 0))
        _write_auth_config(team, pg_port)
        uri = f"http://127.0.0.1:{port}"
        log = team.logs / "mlflow.log"
        env = {**postgres.client_env(team.passfile), "MLFLOW_AUTH_CONFIG_PATH": str(team.auth_config),
               "MLFLOW_AUTH_ADMIN_PASSWORD": admin_password, "MLFLOW_FLASK_SERVER_SECRET_KEY": flask_key,
               "MLFLOW_DISABLE_TELEMETRY": "true", **NO_JOB_RUNNER}
        for key in ("MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
            env.pop(key, None)
        with open(log, "a") as handle:
            process = subprocess.Popen(_server_command(team, pg_port, port, workers), stdout=handle,
                                       stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                       cwd=team.base, start_new_session=True,
                                       umask=0o077)  # what it stores (artifacts, logs) is this user's only
        _wait_until_up(process, uri, log, team)
        state.update(port=port, pid=process.pid, tracking_uri=uri)
    team.state.write_text(json.dumps(state, indent=2))
    point_at(settings, state["tracking_uri"], ADMIN, team.secret("admin_password"), backend="postgresql")
    state["claimed"] = claim_projects(settings, state["tracking_uri"], admin_password)
    return state


# The platform's own experiments (each module that writes one names it: pipelines/publish.py, data/registry.py,
# deploy/records.py, workspace/champion.py, monitor/check.py, batch/record.py). What they hold is acted on:
# a published definition is run, the newest data set version trained on, a deployment record believed.
PLATFORM_EXPERIMENTS = ("mlops-published-pipelines", "mlops-datasets", "mlops-deployments", "mlops-registry",
                        "mlops-monitoring", "mlops-batch")


def claim_projects(settings: Settings, tracking_uri: str, admin_password: str) -> list[str]:
    """Create, as the admin, each mlops.yml project's experiment, registered model and registration lock
    (`mlops-lock.<model>`), and the platform's own experiments, that do not exist yet; returns what was created.

    MLflow gives the creator of an experiment or registered model MANAGE on it, and lets any user create one.
    Created here first, they belong to the admin: users keep the default READ until granted EDIT, so a reader
    can neither register a version (a pickle the next retrain would load) nor hold the lock (docs/security.md).
    """
    import mlflow
    from mlflow.exceptions import MlflowException

    from ml_service.workspace import server_lock

    os.environ.update(MLFLOW_TRACKING_USERNAME=ADMIN, MLFLOW_TRACKING_PASSWORD=admin_password)
    client = mlflow.MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    created = []
    for experiment in [*(p.experiment for p in settings.models), *PLATFORM_EXPERIMENTS]:
        if client.get_experiment_by_name(experiment) is None:
            try:
                client.create_experiment(experiment)
                created.append(f"experiment {experiment}")
            except MlflowException as exc:
                if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                    raise TeamError(f"cannot create the experiment {experiment}: {exc.message}") from None
    for project in settings.models:
        for name in (project.name, server_lock.lock_name(project.name)):
            try:
                client.create_registered_model(name, description="created by `mlops workspace up` (the admin's)")
                created.append(f"registered model {name}")
            except MlflowException as exc:
                if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                    raise TeamError(f"cannot create the registered model {name}: {exc.message}") from None
    experiments = {client.get_experiment_by_name(e).experiment_id: e
                   for e in [*(p.experiment for p in settings.models), *PLATFORM_EXPERIMENTS]}
    models = {n for p in settings.models for n in (p.name, server_lock.lock_name(p.name))}
    return created + reclaim(tracking_uri, experiments, set(models))


def reclaim(tracking_uri: str, experiments: dict[str, str], models: set[str]) -> list[str]:
    """Take MANAGE on the objects `up` claims (experiment id -> name, registered model names) from every user but an
    admin: READ instead. Whoever created one before `up` did (an older workspace, a project added later) MANAGEs it
    and could hold the lock or grant themselves EDIT. Called as the admin; returns what was taken, in words."""
    from mlflow.exceptions import MlflowException

    from ml_service.team.users import set_permission
    from ml_service.workspace.auth_api import AuthApi

    api = AuthApi(tracking_uri)
    try:
        listed = api.request("/api/2.0/mlflow/users/list", "GET").get("users", [])
    except MlflowException as exc:
        raise TeamError(f"cannot list the users of {tracking_uri}: {exc.message}") from None
    taken = []
    for user in listed:
        username = str(user.get("username", ""))
        if user.get("is_admin") or not username:
            continue
        for role in user.get("roles", []) or []:
            for grant in role.get("permissions", []) or []:
                kind, target = grant.get("resource_type"), str(grant.get("resource_pattern", ""))
                claimed = target in experiments if kind == "experiment" else kind == "registered_model" and \
                    target in models
                if grant.get("permission") != "MANAGE" or not claimed:
                    continue
                set_permission(api, username, kind, target, "READ")
                what = f"experiment {experiments[target]}" if kind == "experiment" else f"registered model {target}"
                taken.append(f"{username}: READ (was MANAGE) on {what}")
    return taken


def stop_server(settings: Settings) -> bool:
    """Stop the team workspace's MLflow server (its process group); True if it was running."""
    state = read_state(paths(settings))
    pid = _server_pid(state)
    if pid is None:
        return False
    os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + 30
    while _server_pid(state) is not None and time.monotonic() < deadline:
        time.sleep(0.2)
    if _server_pid(state) is not None:
        os.killpg(pid, signal.SIGKILL)
    return True


def down(settings: Settings) -> list[str]:
    """Stop the MLflow server and PostgreSQL of the team workspace; what was stopped, in words."""
    team = paths(settings)
    state = read_state(team)
    stopped = []
    if stop_server(settings):
        stopped.append(f"MLflow server {state.get('tracking_uri')}")
    if team.pgdata.exists() and postgres.is_running(team.pgdata):
        postgres.stop(team.pgdata)
        stopped.append(f"PostgreSQL on 127.0.0.1:{state.get('pg_port')}")
    return stopped


def point_at(settings: Settings, tracking_uri: str, username: str = "", password_file: Path | None = None,
             backend: str = "") -> Path:
    """Write the local override that points this checkout at tracking_uri (as username)."""
    import yaml

    settings.state_dir.mkdir(parents=True, exist_ok=True)
    data = {"tracking_uri": tracking_uri}
    if username:
        data.update(username=username, password_file=str(password_file))
    if backend:
        data["backend"] = backend
    target = settings.state_dir / LOCAL_OVERRIDE
    target.write_text("# Written by `mlops workspace up|use`: this checkout's workspace. Never committed.\n"
                      + yaml.safe_dump(data, sort_keys=False))
    return target


def use_embedded(settings: Settings) -> bool:
    """Point this checkout back at the embedded sqlite workspace; True if an override was removed."""
    target = settings.state_dir / LOCAL_OVERRIDE
    existed = target.exists()
    target.unlink(missing_ok=True)
    return existed


def use_server(settings: Settings, tracking_uri: str, username: str, password: str) -> Path:
    """Point this checkout at an MLflow server as username (the password stored 0600 in the state dir)."""
    if not tracking_uri.startswith(("http://", "https://")):
        raise UsageError(f"{tracking_uri!r} is not an MLflow server URL (http:// or https://)")
    stored = None
    if username:
        stored = settings.state_dir / "secrets" / "tracking_password"
        write_secret(stored, password)
    return point_at(settings, tracking_uri, username, stored)


def backend(settings: Settings) -> str:
    """postgresql, sqlite or unknown (a server this checkout did not start)."""
    if settings.tracking_uri.startswith("sqlite:"):
        return "sqlite"
    if settings.tracking_uri.startswith("postgresql"):
        return "postgresql"
    override = settings.state_dir / LOCAL_OVERRIDE
    if override.is_file():
        import yaml

        data = yaml.safe_load(override.read_text()) or {}
        if data.get("tracking_uri") == settings.tracking_uri and data.get("backend"):
            return str(data["backend"])
    team = read_state(paths(settings))
    return "postgresql" if team.get("tracking_uri") == settings.tracking_uri else "unknown"


def status(settings: Settings) -> dict:
    """What this checkout uses and whether it answers (the user's credentials are checked too)."""
    report = {"tracking_uri": settings.tracking_uri, "backend": backend(settings), "answers": False,
              "user": settings.tracking_username or None, "authenticated": None,
              "override": str(settings.state_dir / LOCAL_OVERRIDE)
              if (settings.state_dir / LOCAL_OVERRIDE).is_file() else None}
    if report["backend"] == "sqlite":
        report["answers"] = True
    else:
        report["answers"] = answers(settings.tracking_uri, timeout=15)  # a busy server answers late, not never
        if report["answers"]:
            report["authenticated"] = authenticated(
                settings.tracking_uri, settings.tracking_username, settings.tracking_password)
    team = paths(settings)
    state = read_state(team)
    if state:
        report["team_server"] = {
            "tracking_uri": state.get("tracking_uri"), "running": _server_pid(state) is not None,
            "postgres": {"port": state.get("pg_port"),
                         "running": team.pgdata.exists() and postgres.is_running(team.pgdata)},
            "artifacts": state.get("artifacts"), "logs": str(team.logs)}
    return report


def authenticated(tracking_uri: str, username: str, password: str, timeout: float = 30.0) -> bool:
    """True when the server accepts username's credentials (a one-row experiment search)."""
    import base64

    request = urllib.request.Request(f"{tracking_uri.rstrip('/')}/api/2.0/mlflow/experiments/search?max_results=1")
    if username:
        token = base64.b64encode(f"{username}:{password}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status == 200
    except (OSError, urllib.error.URLError):
        return False
