"""Register a model folder as the platform's pipeline would: logged to a run of the project's experiment, the
version naming that run. The platform loads only such versions (workspace/provenance.py, issue 24)."""
from __future__ import annotations

from pathlib import Path


def register_folder(client, name: str, folder: Path, experiment: str, tags: dict | None = None,
                    artifact_location: str | None = None):
    """A new version of name (created if missing) whose files are folder, logged to a new run of experiment."""
    from mlflow.exceptions import MlflowException

    found = client.get_experiment_by_name(experiment)
    experiment_id = found.experiment_id if found else client.create_experiment(experiment, artifact_location)
    run = client.create_run(experiment_id)
    client.log_artifacts(run.info.run_id, str(folder), "model")
    client.set_terminated(run.info.run_id, "FINISHED")
    try:
        client.create_registered_model(name)
    except MlflowException:
        pass
    return client.create_model_version(name, f"{run.info.artifact_uri}/model", run_id=run.info.run_id,
                                       tags=tags or {})
