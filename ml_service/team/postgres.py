"""A PostgreSQL cluster in a folder, run with Debian's own binaries (initdb, pg_ctl, pg_dump, pg_restore).

The server listens on 127.0.0.1 only (no Unix socket), authenticates with scram-sha-256, and
its password never appears on a command line: clients read it from a 0600 passfile (PGPASSFILE).
PostgreSQL refuses to run as root; as root, its processes run in a user namespace that maps this
user to an unprivileged one (`unshare --user`), so the files stay ours and nothing needs a system user.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from ml_service.errors import MLOpsError

INSTALL = "sudo bash environment_setup/postgres.sh   (Debian: apt-get install -y postgresql)"
SUPERUSER = "mlflow"


class PostgresError(MLOpsError):
    """The PostgreSQL cluster could not be created, started, stopped, dumped or restored."""


def bin_dir() -> Path:
    """The folder of the server binaries (newest Debian major version first), or a clear error."""
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), key=lambda p: int(p.parent.parent.name),
                      reverse=True) if Path("/usr/lib/postgresql").is_dir() else []
    if versions:
        return versions[0].parent
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).parent
    raise PostgresError(f"PostgreSQL server binaries (initdb, pg_ctl) are not installed; install them with: {INSTALL}")


def _as_server_user() -> list[str]:
    """The prefix that runs initdb/pg_ctl as a non-root user (postgres refuses root)."""
    if os.geteuid() != 0:
        return []
    return ["unshare", "--user", "--map-user=65534", "--map-group=65534"]


def _run(argv: list[str], what: str, env: dict | None = None) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=600)
    if done.returncode != 0:
        raise PostgresError(f"{what} failed (exit {done.returncode}): {(done.stderr or done.stdout).strip()[-800:]}")
    return done.stdout


def write_passfile(path: Path, port: int, password: str) -> None:
    """A libpq passfile (0600) for SUPERUSER on 127.0.0.1:port, any database."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # an existing file keeps its mode through open(): tightened before the password is written
    with os.fdopen(fd, "w") as handle:
        handle.write(f"127.0.0.1:{port}:*:{SUPERUSER}:{password}\n")


def client_env(passfile: Path) -> dict[str, str]:
    """The environment of a libpq client (pg_dump, psycopg2) that reads the password from passfile."""
    return {**os.environ, "PGPASSFILE": str(passfile), "PGCONNECT_TIMEOUT": "10"}


def init(data_dir: Path, password: str) -> None:
    """Create a cluster in data_dir (which must not exist) with SUPERUSER's password set."""
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    pwfile = data_dir.parent / ".initdb-password"
    fd = os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(password + "\n")
    try:
        _run([*_as_server_user(), str(bin_dir() / "initdb"), "-D", str(data_dir), "-U", SUPERUSER,
              "--auth=scram-sha-256", f"--pwfile={pwfile}", "-E", "UTF8", "--locale=C.UTF-8"], "initdb")
    finally:
        pwfile.unlink(missing_ok=True)


def is_running(data_dir: Path) -> bool:
    """True when a server runs on data_dir (pg_ctl status)."""
    if not (data_dir / "PG_VERSION").exists():
        return False
    done = subprocess.run([*_as_server_user(), str(bin_dir() / "pg_ctl"), "-D", str(data_dir), "status"],
                          capture_output=True, text=True)
    return done.returncode == 0


def running_port(data_dir: Path) -> int:
    """The port of the server running on data_dir (line 4 of postmaster.pid)."""
    return int((data_dir / "postmaster.pid").read_text().splitlines()[3])


def start(data_dir: Path, port: int, log: Path) -> None:
    """Start the server on 127.0.0.1:port (TCP only) and wait until it accepts connections."""
    options = f"-c listen_addresses=127.0.0.1 -p {port} -c unix_socket_directories=''"
    _run([*_as_server_user(), str(bin_dir() / "pg_ctl"), "-D", str(data_dir), "-l", str(log), "-w", "-t", "60",
          "-o", options, "start"], f"starting PostgreSQL on 127.0.0.1:{port} (log: {log})")


def stop(data_dir: Path) -> None:
    """Stop the server (fast shutdown: open transactions roll back) if it runs."""
    if is_running(data_dir):
        _run([*_as_server_user(), str(bin_dir() / "pg_ctl"), "-D", str(data_dir), "-m", "fast", "-w", "stop"],
             "stopping PostgreSQL")


def url(port: int, database: str) -> str:
    """A SQLAlchemy URL without the password (libpq reads it from PGPASSFILE)."""
    return f"postgresql+psycopg2://{SUPERUSER}@127.0.0.1:{port}/{database}"


# Two processes creating the same database at once (two `mlops tune` workers joining one study): the one that
# loses gets "already exists" (42P04) or, when both passed the catalog check, a unique violation on
# pg_database's name index (23505). Either way the database is there.
CREATED_MEANWHILE = ("42P04", "23505")


def create_database(port: int, passfile: Path, name: str) -> bool:
    """Create database name if missing; True when this call created it (False: it existed, or another
    process created it meanwhile)."""
    import psycopg2

    connection = psycopg2.connect(host="127.0.0.1", port=port, user=SUPERUSER, dbname="postgres",
                                  passfile=str(passfile), connect_timeout=10)
    try:
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
            if cursor.fetchone():
                return False
            try:
                cursor.execute(f'CREATE DATABASE "{name}"')
            except psycopg2.Error as exc:
                if exc.pgcode in CREATED_MEANWHILE:
                    return False
                raise
            return True
    finally:
        connection.close()


def recreate_database(port: int, passfile: Path, name: str) -> None:
    """Drop database name (closing its connections) and create it empty."""
    import psycopg2

    connection = psycopg2.connect(host="127.0.0.1", port=port, user=SUPERUSER, dbname="postgres",
                                  passfile=str(passfile), connect_timeout=10)
    try:
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            cursor.execute(f'CREATE DATABASE "{name}"')
    finally:
        connection.close()


def dump(port: int, passfile: Path, database: str, target: Path) -> None:
    """pg_dump database in the custom format (compressed, restorable with pg_restore)."""
    _run([str(bin_dir() / "pg_dump"), "-h", "127.0.0.1", "-p", str(port), "-U", SUPERUSER, "-Fc",
          "-f", str(target), database], f"pg_dump of {database}", env=client_env(passfile))


def restore(port: int, passfile: Path, database: str, source: Path) -> None:
    """pg_restore a custom-format dump into database (an empty one: see recreate_database)."""
    _run([str(bin_dir() / "pg_restore"), "-h", "127.0.0.1", "-p", str(port), "-U", SUPERUSER,
          "--no-owner", "--single-transaction", "-d", database, str(source)],
         f"pg_restore of {database}", env=client_env(passfile))
