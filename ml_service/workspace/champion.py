"""Choosing the champion by hand: `mlops model promote NAME:VERSION`.

Needed when `champion` went missing (its version deleted through the MLflow client, or the alias
removed): retrains then refuse to promote rather than take the gap for a first run. The move is a
compare-and-set under the same workspace lock as a retrain's registration, and it is recorded: tags
on the version, and a run in the experiment `mlops-registry` (who, when, from which version, why).
"""
from __future__ import annotations

import time
from dataclasses import dataclass

from ml_service import identity
from ml_service.config import Settings
from ml_service.workspace import registry, tracking

EXPERIMENT = "mlops-registry"


@dataclass(frozen=True)
class Promotion:
    """What `mlops model promote` did."""

    name: str
    version: str
    previous: str | None
    changed: bool
    record_id: str = ""


def promote(settings: Settings, name: str, version: str, reason: str = "") -> Promotion:
    """Move `champion` of name to version (it must exist and be READY); record who did it and why."""
    from mlflow.exceptions import MlflowException

    from ml_service.workspace.promotion import registry_lock

    client = tracking.connect(settings)
    context = {"tracking_uri": settings.tracking_uri, "state_dir": str(settings.state_dir)}
    with registry_lock(context, name, settings=settings):
        try:
            found = client.get_model_version(name, version)
        except MlflowException:
            raise registry.RegistryError(f"model '{name}' has no version {version}") from None
        if str(found.status) != "READY":
            raise registry.RegistryError(f"{name} version {version} is {found.status}, not READY: it cannot be "
                                         "the champion")
        current = registry.get_alias(client, name, registry.CHAMPION)
        previous = str(current.version) if current is not None else None
        if previous == str(version):
            return Promotion(name, str(version), previous, changed=False)
        registry.complete_registration(client, found)
        who = settings.user or "unknown"
        when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        for key, value in (("mlops.promoted_by", who), ("mlops.promoted_at", when),
                           (registry.DECISION_TAG, f"promoted by hand by {who}" + (f": {reason}" if reason else ""))):
            client.set_model_version_tag(name, version, key, value)
        experiment_id = tracking.ensure_experiment(client, settings, EXPERIMENT)
        tags = {"mlops.kind": "promotion", "model_name": name, "model_version": str(version),
                "previous_champion": previous or "", "reason": reason[:4000]}
        tags.update(identity.run_user_tags(settings))
        run = client.create_run(experiment_id, run_name=f"champion: {name} v{version}", tags=tags)
        client.set_terminated(run.info.run_id, "FINISHED")
    return Promotion(name, str(version), previous, changed=True, record_id=run.info.run_id)
