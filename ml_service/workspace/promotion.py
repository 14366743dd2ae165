"""Registration of a promoted candidate, called from a pipeline step's own process."""
from __future__ import annotations

import json
import pickle
from pathlib import Path

from ml_service.workspace import registry


def registration_tags(context: dict, metric: str, value: float, project_tags: dict) -> dict[str, str]:
    """The tags every registered version carries (see ARCHITECTURE.md, Registry)."""
    tags = {str(k): str(v) for k, v in project_tags.items()}
    tags.update({
        "experiment_name": context["experiment_name"],
        "metric": metric,
        metric: repr(float(value)),
        "pipeline_run_id": context["parent_run_id"],
        "git_commit": context["git"].get("commit", ""),
    })
    datasets = context.get("datasets") or []
    if datasets:
        tags["dataset_name"] = datasets[0]["name"]
        tags["dataset_digest"] = datasets[0]["digest"]
        tags["dataset_source"] = datasets[0]["source"]
    if context.get("build_id"):
        tags["BuildId"] = context["build_id"]
    if context.get("build_uri"):
        tags["BuildUri"] = context["build_uri"]
    return {k: v for k, v in tags.items() if v != ""}


def register_candidate(model_dir: Path, metric: str, project_tags: dict, train_step: str,
                       context: dict) -> dict:
    """Log the pickled scikit-learn model as an MLflow model, register it, move `champion` to it."""
    import mlflow
    import sklearn

    client = mlflow.MlflowClient(tracking_uri=context["tracking_uri"], registry_uri=context["tracking_uri"])
    mlflow.set_tracking_uri(context["tracking_uri"])
    mlflow.set_registry_uri(context["tracking_uri"])
    name = context["model_name"]
    train_run = context["source_runs"][train_step]
    existing = registry.versions_for_run(client, name, train_run)
    if existing:
        raise registry.RegistryError(
            f"run {train_run} is already registered as {name} version {existing[0].version}; "
            "a run can be registered only once")

    value = json.loads((model_dir / "metrics.json").read_text())[metric]
    with open(model_dir / "model.pkl", "rb") as handle:
        model = pickle.load(handle)
    with mlflow.start_run(run_id=context["run_id"]):
        info = mlflow.sklearn.log_model(
            model, name="model", serialization_format="pickle",
            pip_requirements=[f"scikit-learn=={sklearn.__version__}"],
        )
    tags = registration_tags(context, metric, value, project_tags)
    version = registry.register_model(client, name, info.model_uri, train_run, tags)
    return {
        "values": {"registered_version": str(version.version)},
        "outcome": f"registered {name} version {version.version} ({metric} {value:.4f}); champion moved",
    }
