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

from ml_service.config import Settings
from ml_service.sections import MONITOR_KEYS, Monitor, window_seconds

MonitorConfig = Monitor  # the drift settings of one model project (parsed by load_settings)
DEFAULTS = {key: getattr(Monitor(), key) for key in MONITOR_KEYS}
__all__ = ["DEFAULTS", "MonitorConfig", "load", "window_seconds", "collection_mount"]


def load(settings: Settings) -> MonitorConfig:
    """The selected project's monitor settings: defaults, then mlops.yml's `monitor:`, then the project's."""
    return settings.model.monitor


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
