"""A new data set version triggers the pipelines that use it: a `resources.webhooks` trigger.

Retraining pipelines declare the data set event as an incoming webhook (on Azure DevOps an "Incoming
WebHook" service connection named `mlops-data`; locally the registry calls it):

    resources:
      webhooks:
        - webhook: data
          connection: mlops-data
          filters:
            - path: project          # one event per model project that uses the data set
              value: my_project

The event's payload: dataset, version, sha256, digest, project. The runs are queued with Build.Reason
`ResourceTrigger` and read the data set's newest version as `$data` (templates/retrain-stages.yml).
"""
from __future__ import annotations

from pathlib import Path

import yaml

from ml_service.config import Settings
from ml_service.data.registry import Version, projects_using

CONNECTION = "mlops-data"


def payloads(settings: Settings, version: Version) -> list[dict]:
    """One event per model project that uses the data set."""
    return [{"dataset": version.name, "version": version.version, "sha256": version.sha256,
             "digest": version.digest, "project": m.project} for m in projects_using(settings, version.name)]


def matching_pipelines(source_dir: Path, events: list[dict]) -> list[Path]:
    """The pipeline files with a webhook resource that one of the events triggers (each once)."""
    from ml_service.ci.model import triggers
    from ml_service.ci.server.service import pipeline_files

    found = []
    for path in pipeline_files(source_dir).values():
        try:
            document = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError:
            continue
        section = document.get("resources") if isinstance(document, dict) else None
        hooks = (section.get("webhooks") or []) if isinstance(section, dict) else []
        if any(triggers.webhook_trigger_matches(hook, CONNECTION, event) for hook in hooks for event in events):
            found.append(path)
    return found


def queue_triggered(settings: Settings, version: Version) -> list[int]:
    """Queue every pipeline the new version triggers; returns the run ids (the caller runs them)."""
    from ml_service.ci.server import service

    store = service.open_store(settings)
    return [service.queue(settings, store, path, "ResourceTrigger")
            for path in matching_pipelines(settings.root, payloads(settings, version))]
