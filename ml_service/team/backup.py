"""`mlops workspace backup DIR` / `restore DIR`: the team workspace's databases and artifacts.

A backup is a folder: `mlflow.dump` and `mlflow_auth.dump` (pg_dump, custom format: runs, the
registry, users and permissions), `artifacts/` (the proxied artifact store, copied after the dumps
so every file a row names is there) and `manifest.json`. No secret is in it: restoring sets the
admin's password to the restoring workspace's own; other users keep theirs.
"""
from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

from ml_service.config import Settings
from ml_service.errors import MLOpsError, UsageError
from ml_service.team import postgres
from ml_service.team import server as team

MANIFEST = "manifest.json"


class BackupError(MLOpsError):
    """A backup or restore could not be made."""


def _running(settings: Settings) -> tuple[team.TeamPaths, dict]:
    paths = team.paths(settings)
    state = team.read_state(paths)
    if not state or not postgres.is_running(paths.pgdata):
        raise BackupError(f"no team workspace runs from {settings.state_dir}: start it with `mlops workspace up`")
    return paths, state


def backup(settings: Settings, target: Path) -> dict:
    """Dump both databases, then copy the artifacts, into target (new or empty); returns the manifest."""
    paths, state = _running(settings)
    target = target.resolve()
    if target.exists() and any(target.iterdir()):
        raise UsageError(f"{target} is not empty: a backup goes into a new or empty folder (nothing is overwritten)")
    target.mkdir(parents=True, exist_ok=True)
    for database in team.DATABASES:
        postgres.dump(state["pg_port"], paths.passfile, database, target / f"{database}.dump")
    shutil.copytree(paths.artifacts, target / "artifacts")
    import mlflow

    manifest = {"created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "databases": list(team.DATABASES),
                "artifact_files": sum(1 for p in (target / "artifacts").rglob("*") if p.is_file()),
                "mlflow": mlflow.__version__, "postgresql": postgres.bin_dir().parent.name}
    (target / MANIFEST).write_text(json.dumps(manifest, indent=2))
    return manifest


def _check(source: Path) -> dict:
    manifest_path = source / MANIFEST
    if not manifest_path.is_file():
        raise UsageError(f"{source}: not a workspace backup ({MANIFEST} is missing)")
    manifest = json.loads(manifest_path.read_text())
    missing = [f"{d}.dump" for d in manifest.get("databases", []) if not (source / f"{d}.dump").is_file()]
    if not (source / "artifacts").is_dir():
        missing.append("artifacts/")
    if missing:
        raise UsageError(f"{source}: incomplete backup, missing {', '.join(missing)}")
    return manifest


def restore(settings: Settings, source: Path) -> dict:
    """Replace this checkout's team workspace (started, or created, if needed) with the backup in source."""
    source = source.resolve()
    manifest = _check(source)
    team.up(settings)  # a fresh cluster on first use, with this workspace's own secrets
    team.stop_server(settings)  # no connection holds the databases while they are replaced
    paths = team.paths(settings)
    state = team.read_state(paths)
    port = state["pg_port"]
    for database in manifest["databases"]:
        postgres.recreate_database(port, paths.passfile, database)
        postgres.restore(port, paths.passfile, database, source / f"{database}.dump")
    _set_admin_password(port, paths)
    shutil.copytree(source / "artifacts", paths.artifacts, dirs_exist_ok=True)
    return team.up(settings)


def _set_admin_password(port: int, paths: team.TeamPaths) -> None:
    """The restored admin user gets this workspace's admin password (the backup holds no secret)."""
    import psycopg2
    from werkzeug.security import generate_password_hash

    password = team.secret(paths, "admin_password")
    connection = psycopg2.connect(host="127.0.0.1", port=port, user=postgres.SUPERUSER, dbname="mlflow_auth",
                                  passfile=str(paths.passfile), connect_timeout=10)
    try:
        with connection, connection.cursor() as cursor:
            cursor.execute("UPDATE users SET password_hash = %s WHERE username = %s",
                           (generate_password_hash(password), team.ADMIN))
    finally:
        connection.close()
