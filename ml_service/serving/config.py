"""Settings of a scoring process, read once from its environment (a container has no mlops.yml).

Every limit has a safe default and an MLOPS_* variable; docs/serving.md ("Serving limits") lists them.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping


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
    keys = [k.strip() for k in env.get("MLOPS_SCORING_KEYS", "").split(",") if k.strip()]
    key_file = env.get("MLOPS_SCORING_KEY_FILE", "")
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


def _int(env: Mapping[str, str], name: str, default: int, minimum: int = 0) -> int:
    try:
        value = int(env.get(name, default))
    except ValueError:
        raise ServingConfigError(f"{name} must be a whole number, got {env[name]!r}") from None
    if value < minimum:
        raise ServingConfigError(f"{name} must be at least {minimum}, got {value}")
    return value


def _seconds(env: Mapping[str, str], name: str, default: float) -> float:
    try:
        value = float(env.get(name, default))
    except ValueError:
        raise ServingConfigError(f"{name} must be a number of seconds, got {env[name]!r}") from None
    if not 0 <= value <= 86_400:
        raise ServingConfigError(f"{name} must be between 0 and 86400 seconds, got {value}")
    return value


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
    value = env.get("MLOPS_WORKERS", "1")
    return cpu_count() if value == "auto" else _int(env, "MLOPS_WORKERS", 1, minimum=1)


def load_serving_settings(env: Mapping[str, str] | None = None) -> ServingSettings:
    """Read MODEL_DIR and MLOPS_* serving variables."""
    env = os.environ if env is None else env
    d = ServingSettings
    return ServingSettings(
        model_dir=env.get("MODEL_DIR", ""),
        score_module=env.get("MLOPS_SCORE_MODULE") or d.score_module,
        model_name=env.get("MLOPS_MODEL_NAME", d.model_name),
        model_version=env.get("MLOPS_MODEL_VERSION", d.model_version),
        max_body_bytes=_int(env, "MLOPS_MAX_BODY_BYTES", d.max_body_bytes, minimum=1),
        max_rows=_int(env, "MLOPS_MAX_ROWS", d.max_rows, minimum=1),
        max_header_bytes=_int(env, "MLOPS_MAX_HEADER_BYTES", d.max_header_bytes, minimum=1024),
        header_timeout_s=_seconds(env, "MLOPS_HEADER_TIMEOUT_SECONDS", d.header_timeout_s),
        body_timeout_s=_seconds(env, "MLOPS_BODY_TIMEOUT_SECONDS", d.body_timeout_s),
        keep_alive_s=_seconds(env, "MLOPS_KEEP_ALIVE_SECONDS", d.keep_alive_s),
        max_connections=_int(env, "MLOPS_MAX_CONNECTIONS", d.max_connections, minimum=1),
        offload_bytes=_int(env, "MLOPS_OFFLOAD_BYTES", d.offload_bytes),
        scoring_threads=_int(env, "MLOPS_SCORING_THREADS", d.scoring_threads, minimum=1),
        drain_s=_seconds(env, "MLOPS_DRAIN_SECONDS", d.drain_s),
        graceful_timeout_s=_seconds(env, "MLOPS_GRACEFUL_TIMEOUT_SECONDS", d.graceful_timeout_s),
        workers=_workers(env),
        api_keys=_keys(env),
        collect_dir=env.get("MLOPS_COLLECT_DIR", ""),
        collect_max_bytes=_int(env, "MLOPS_COLLECT_MAX_BYTES", d.collect_max_bytes, minimum=1),
        collect_keep_files=_int(env, "MLOPS_COLLECT_KEEP_FILES", d.collect_keep_files, minimum=1),
        collect_flush_s=_seconds(env, "MLOPS_COLLECT_FLUSH_SECONDS", d.collect_flush_s),
        log_requests=env.get("MLOPS_LOG_REQUESTS", "true").lower() != "false",
    )
