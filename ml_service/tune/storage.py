"""Where a workspace's Optuna studies live (Optuna's RDB storage), so that every worker joins the same study:

- the embedded workspace: `sqlite:///<state_dir>/tune.db`, beside the embedded MLflow store (workers on this
  machine);
- the team workspace this checkout runs (`mlops workspace up`): the database `mlops_tune` on its PostgreSQL,
  created on first use; the password is read from the team's 0600 passfile, never put in a URL;
- anywhere else (a worker on another machine of the team): the SQLAlchemy URL in MLOPS_TUNE_STORAGE (e.g.
  `postgresql+psycopg2://mlflow@db-host:5432/mlops_tune`, the password in PGPASSFILE or the URL).
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

from ml_service import env as envvars
from ml_service.tune import TuneError

DATABASE = "mlops_tune"
ENV = envvars.MLOPS_TUNE_STORAGE.name
ATTEMPTS = 3


@dataclass(frozen=True)
class Storage:
    """A SQLAlchemy URL and what connecting needs (a passfile); `shown` has no password."""

    url: str
    kind: str                      # sqlite | team | url
    connect_args: dict = field(default_factory=dict)

    @property
    def shown(self) -> str:
        """The URL as it may be logged: the password, if any, replaced by ***."""
        from urllib.parse import urlsplit, urlunsplit

        parts = urlsplit(self.url)
        if parts.password:
            netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
            return urlunsplit(parts._replace(netloc=netloc))
        return self.url


def storage_for(settings, environ=None) -> Storage:
    """The study storage of settings' workspace (see the module's docstring)."""
    environ = os.environ if environ is None else environ
    if envvars.MLOPS_TUNE_STORAGE.is_set(environ):
        return Storage(envvars.MLOPS_TUNE_STORAGE.get(environ), "url")
    if settings.tracking_uri.startswith("sqlite:"):
        settings.state_dir.mkdir(parents=True, exist_ok=True)
        return Storage(f"sqlite:///{settings.state_dir / 'tune.db'}", "sqlite")
    from ml_service.team import postgres
    from ml_service.team import server as team

    state = team.read_state(team.paths(settings))
    if state.get("pg_port") and state.get("tracking_uri") == settings.tracking_uri:
        paths = team.paths(settings)
        try:
            postgres.create_database(state["pg_port"], paths.passfile, DATABASE)
        except Exception as exc:  # psycopg2's errors: the team's PostgreSQL is down
            raise TuneError(f"the team PostgreSQL on 127.0.0.1:{state['pg_port']} does not answer ({exc}); "
                            "start it with `mlops workspace up`") from None
        return Storage(postgres.url(state["pg_port"], DATABASE), "team", {"passfile": str(paths.passfile)})
    raise TuneError(f"the workspace {settings.tracking_uri} has no study storage this checkout knows: set {ENV} to "
                    "a SQLAlchemy URL of the team's database (e.g. postgresql+psycopg2://USER@HOST:5432/mlops_tune)")


def open_storage(storage: Storage, heartbeat_seconds: float, failed_trial_callback=None):
    """Optuna's RDBStorage on storage, with heartbeats (a trial silent for 2 heartbeats is failed)."""
    import warnings

    import optuna

    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)  # heartbeats: stable since 2.x
    engine_kwargs = {"connect_args": dict(storage.connect_args)} if storage.connect_args else {}
    if storage.kind == "sqlite":
        engine_kwargs = {"connect_args": {"timeout": 60}}
    else:
        engine_kwargs["pool_pre_ping"] = True
    for attempt in range(ATTEMPTS):  # workers started together race to create the tables of a new database
        try:
            return optuna.storages.RDBStorage(storage.url, engine_kwargs=engine_kwargs,
                                              heartbeat_interval=int(max(heartbeat_seconds, 1)),
                                              grace_period=int(max(heartbeat_seconds, 1) * 2),
                                              heartbeat_stale_trial_callback=failed_trial_callback)
        except Exception as exc:  # SQLAlchemy's errors (a table or version row created by the other worker)
            if attempt == ATTEMPTS - 1:
                raise TuneError(f"the study storage {storage.shown} cannot be opened: {type(exc).__name__}: "
                                f"{str(exc).splitlines()[0] if str(exc) else exc}") from None
            time.sleep(1 + attempt)
