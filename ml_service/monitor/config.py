"""The `monitor:` section of mlops.yml: where collected inputs are, the window, the drift thresholds.

    monitor:
      collect_dir: "collected/{environment}/{model}"   # under the state dir; {model}: registered name
      window: 24h                 # default --window
      min_rows: 50                # fewer collected rows: no verdict (exit 2)
      psi: 0.2                    # population stability index above which a feature (or the
                                  #   predictions) drifted ...
      p_value: 0.01               # ... when the KS test (numbers) or chi-square test (categories)
                                  #   also rejects "same distribution" below this p-value
      retrain: false              # true: drift queues and runs the model's retrain pipeline

A model project may override any of these under its own entry (`models: - project: ... monitor:`).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ml_service.config import CONFIG_FILE, ConfigError, Settings, read_config

DEFAULTS = {"collect_dir": "collected/{environment}/{model}", "window": "24h", "min_rows": 50, "psi": 0.2,
            "p_value": 0.01, "retrain": False}
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


@dataclass(frozen=True)
class MonitorConfig:
    """Drift settings of one model project."""

    collect_dir: str
    window: str
    min_rows: int
    psi: float
    p_value: float
    retrain: bool

    def collected(self, settings: Settings, environment: str, model: str) -> Path:
        """The folder the scoring service of environment collects model's inputs into."""
        path = Path(self.collect_dir.format(environment=environment, model=model))
        return path if path.is_absolute() else settings.state_dir / path


def window_seconds(text: str) -> float | None:
    """'90m', '24h', '7d' as seconds; 'all' as None."""
    text = str(text).strip().lower()
    if text == "all":
        return None
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([smhd])", text)
    if not match:
        raise ConfigError(f"window {text!r}: expected a number and a unit (90m, 24h, 7d) or 'all'")
    return float(match.group(1)) * UNITS[match.group(2)]


def load(settings: Settings) -> MonitorConfig:
    """The selected project's monitor settings: defaults, then mlops.yml's `monitor:`, then the project's."""
    path = settings.root / CONFIG_FILE
    data = read_config(path)
    values = dict(DEFAULTS)
    for where, section in (("monitor", data.get("monitor")),
                           (f"models[{settings.model.project}].monitor", _project_section(data, settings))):
        if section is None:
            continue
        if not isinstance(section, dict):
            raise ConfigError(f"{path}: {where} must be a mapping")
        unknown = sorted(set(section) - set(DEFAULTS))
        if unknown:
            raise ConfigError(f"{path}: {where}: unknown key(s) {', '.join(unknown)} (known: {', '.join(DEFAULTS)})")
        values.update(section)
    try:
        config = MonitorConfig(collect_dir=str(values["collect_dir"]), window=str(values["window"]),
                               min_rows=int(values["min_rows"]), psi=float(values["psi"]),
                               p_value=float(values["p_value"]), retrain=_bool(values["retrain"]))
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{path}: monitor: {exc}") from None
    window_seconds(config.window)
    if not 0 < config.p_value < 1 or config.psi <= 0 or config.min_rows < 1:
        raise ConfigError(f"{path}: monitor: p_value must be in (0, 1), psi above 0, min_rows at least 1")
    return config


def _project_section(data: dict, settings: Settings):
    for entry in data.get("models") or []:
        if isinstance(entry, dict) and entry.get("project") == settings.model.project:
            return entry.get("monitor")
    return None


def _bool(value) -> bool:
    if isinstance(value, bool):
        return value
    if str(value).lower() in ("true", "false"):
        return str(value).lower() == "true"
    raise ValueError(f"retrain must be true or false, got {value!r}")


SCORING_UID = 10001  # the scoring image's user (environment_setup/Dockerfile.scoring)
CONTAINER_COLLECT_DIR = "/var/lib/mlops/collected"


def collection_mount(settings: Settings, environment: str, model: str) -> tuple[dict, dict]:
    """(docker volumes, environment) that make a scoring container collect into monitor.collect_dir.

    For the QA container (ml_service/deploy/qa.py): the host folder is created, owned by the image's
    user when we can (root), and mounted read-write; MLOPS_COLLECT_DIR points the service at it.
    """
    import os

    host = load(settings).collected(settings, environment, model)
    host.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        os.chown(host, SCORING_UID, -1)
        host.chmod(0o750)
    else:  # not root: the container's user cannot be given the folder, so it may write to it
        host.chmod(0o777)
    return ({str(host): {"bind": CONTAINER_COLLECT_DIR, "mode": "rw"}}, {"MLOPS_COLLECT_DIR": CONTAINER_COLLECT_DIR})
