"""Settings of a scoring process, read once from its environment (a container has no mlops.yml)."""
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
    api_keys: tuple[str, ...] = field(default=(), repr=False)
    collect_dir: str = ""
    collect_max_bytes: int = 10_000_000
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


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    try:
        return int(env.get(name, default))
    except ValueError:
        raise ServingConfigError(f"{name} must be a whole number, got {env[name]!r}") from None


def load_serving_settings(env: Mapping[str, str] | None = None) -> ServingSettings:
    """Read MODEL_DIR and MLOPS_* serving variables."""
    env = os.environ if env is None else env
    return ServingSettings(
        model_dir=env.get("MODEL_DIR", ""),
        score_module=env.get("MLOPS_SCORE_MODULE") or ServingSettings.score_module,
        model_name=env.get("MLOPS_MODEL_NAME", ServingSettings.model_name),
        model_version=env.get("MLOPS_MODEL_VERSION", ServingSettings.model_version),
        max_body_bytes=_int(env, "MLOPS_MAX_BODY_BYTES", ServingSettings.max_body_bytes),
        api_keys=_keys(env),
        collect_dir=env.get("MLOPS_COLLECT_DIR", ""),
        collect_max_bytes=_int(env, "MLOPS_COLLECT_MAX_BYTES", ServingSettings.collect_max_bytes),
        log_requests=env.get("MLOPS_LOG_REQUESTS", "true").lower() != "false",
    )
