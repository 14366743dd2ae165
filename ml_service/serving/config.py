"""Settings of a scoring process, read once from its environment (a container has no mlops.yml).

Every limit has a safe default and an MLOPS_* variable, declared in ml_service/env.py; docs/serving.md
("Serving limits") and docs/environment.md list them.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

from ml_service import env as envvars
from ml_service.env import EnvError


class ServingConfigError(Exception):
    """The scoring service cannot start with this configuration."""


@dataclass(frozen=True)
class ServingSettings:
    """What the service needs: the model, its score module, limits, auth keys, data collection.

    score_module is a module with init(model_dir) and run(data) (docs/model-projects.md); the default
    serves any MLflow model through mlflow.pyfunc.
    """

    model_dir: str
    score_module: str = "ml_service.serving.pyfunc_score"
    model_name: str = "model"
    model_version: str = "0"
    max_body_bytes: int = 1_000_000
    max_rows: int = 100_000
    max_header_bytes: int = 16_384
    header_timeout_s: float = 10.0
    body_timeout_s: float = 30.0
    keep_alive_s: float = 5.0
    max_connections: int = 1_000
    offload_bytes: int = 16_384
    scoring_threads: int = 1
    drain_s: float = 2.0
    graceful_timeout_s: float = 20.0
    workers: int = 1
    api_keys: tuple[str, ...] = field(default=(), repr=False)
    collect_dir: str = ""
    collect_max_bytes: int = 10_000_000
    collect_keep_files: int = 20
    collect_flush_s: float = 1.0
    log_requests: bool = True

    @property
    def auth_enabled(self) -> bool:
        """True when requests must carry one of the keys."""
        return bool(self.api_keys)


def _keys(env: Mapping[str, str]) -> tuple[str, ...]:
    keys = [k.strip() for k in envvars.MLOPS_SCORING_KEYS.raw(env).split(",") if k.strip()]
    key_file = envvars.MLOPS_SCORING_KEY_FILE.raw(env)
    if key_file:
        try:
            keys += [line.strip() for line in Path(key_file).read_text().splitlines() if line.strip()]
        except OSError as exc:
            raise ServingConfigError(f"MLOPS_SCORING_KEY_FILE {key_file}: {exc.strerror}") from None
        if not keys:
            raise ServingConfigError(f"MLOPS_SCORING_KEY_FILE {key_file} holds no key")
    short = [k for k in keys if len(k) < 16]
    if short:
        raise ServingConfigError("scoring keys must be at least 16 characters long")
    return tuple(keys)


def cpu_count() -> int:
    """The CPUs this process may use: its affinity, lowered to its cgroup's CPU quota (a container limit)."""
    count = len(os.sched_getaffinity(0))
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()
        if quota != "max":
            count = min(count, max(1, -(-int(quota) // int(period))))
    except (OSError, ValueError):
        pass
    return count


def _workers(env: Mapping[str, str]) -> int:
    value = envvars.MLOPS_WORKERS.get(env)
    return cpu_count() if value == "auto" else value


def worker_environment(settings: ServingSettings, env: Mapping[str, str] | None = None) -> dict[str, str]:
    """env (default: this process's) with settings' model in it (MODEL_DIR, MLOPS_MODEL_NAME, MLOPS_MODEL_VERSION,
    MLOPS_SCORE_MODULE): the environment of a worker process that reads its settings there. Its limits are the
    environment's own: settings were read from it."""
    env = os.environ if env is None else env
    return {**env, "MODEL_DIR": settings.model_dir, "MLOPS_MODEL_NAME": settings.model_name,
            "MLOPS_MODEL_VERSION": settings.model_version, "MLOPS_SCORE_MODULE": settings.score_module}


def load_serving_settings(env: Mapping[str, str] | None = None) -> ServingSettings:
    """Read MODEL_DIR and the MLOPS_* serving variables (ml_service/env.py)."""
    env = os.environ if env is None else env
    try:
        return ServingSettings(
            model_dir=env.get("MODEL_DIR", ""),
            score_module=envvars.MLOPS_SCORE_MODULE.get(env),
            model_name=envvars.MLOPS_MODEL_NAME.raw(env) or "model",
            model_version=envvars.MLOPS_MODEL_VERSION.get(env),
            max_body_bytes=envvars.MLOPS_MAX_BODY_BYTES.get(env),
            max_rows=envvars.MLOPS_MAX_ROWS.get(env),
            max_header_bytes=envvars.MLOPS_MAX_HEADER_BYTES.get(env),
            header_timeout_s=envvars.MLOPS_HEADER_TIMEOUT_SECONDS.get(env),
            body_timeout_s=envvars.MLOPS_BODY_TIMEOUT_SECONDS.get(env),
            keep_alive_s=envvars.MLOPS_KEEP_ALIVE_SECONDS.get(env),
            max_connections=envvars.MLOPS_MAX_CONNECTIONS.get(env),
            offload_bytes=envvars.MLOPS_OFFLOAD_BYTES.get(env),
            scoring_threads=envvars.MLOPS_SCORING_THREADS.get(env),
            drain_s=envvars.MLOPS_DRAIN_SECONDS.get(env),
            graceful_timeout_s=envvars.MLOPS_GRACEFUL_TIMEOUT_SECONDS.get(env),
            workers=_workers(env),
            api_keys=_keys(env),
            collect_dir=envvars.MLOPS_COLLECT_DIR.get(env),
            collect_max_bytes=envvars.MLOPS_COLLECT_MAX_BYTES.get(env),
            collect_keep_files=envvars.MLOPS_COLLECT_KEEP_FILES.get(env),
            collect_flush_s=envvars.MLOPS_COLLECT_FLUSH_SECONDS.get(env),
            log_requests=envvars.MLOPS_LOG_REQUESTS.get(env),
        )
    except EnvError as exc:
        raise ServingConfigError(str(exc)) from None
