"""ML pipeline runs (steps ran or reused, metrics, plots, the data validation report) and registered
models (versions, aliases, lineage, where each version is live), read from MLflow."""
from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.requests import Request

from ml_service.studio.web import studio_of


def ml_runs(request: Request):
    """GET /ml: the newest ML pipeline runs of every model project."""
    from ml_service.studio import mlruns

    studio = studio_of(request)
    return studio.render(request, "ml_runs.html", runs=mlruns.pipeline_runs(studio.client(), studio.settings))


def ml_run(request: Request):
    """GET /ml/{run_id}: one ML pipeline run with its steps."""
    from mlflow.exceptions import MlflowException

    from ml_service.studio import mlruns

    studio = studio_of(request)
    client = studio.client()
    try:
        run = mlruns.pipeline_run(client, request.path_params["run_id"])
        steps = mlruns.steps(client, run.run_id)
    except MlflowException:
        raise HTTPException(404, f"no ML pipeline run {request.path_params['run_id']}") from None
    return studio.render(request, "ml_run.html", run=run, steps=steps)


def ml_artifact(request: Request):
    """GET /ml/{run_id}/artifact/{path}: a plot or report of a step, served as studio/artifacts.py says (never
    as active content of the Studio's origin)."""
    from mlflow.exceptions import MlflowException

    from ml_service.studio import artifacts, mlruns

    studio = studio_of(request)
    try:
        path, copy = mlruns.artifact_path(studio.client(), request.path_params["run_id"],
                                          request.path_params["path"])
    except MlflowException:
        path, copy = None, None
    if path is None:
        raise HTTPException(404, "no such artifact")
    return artifacts.response(path, request, remove=copy)


def models(request: Request):
    """GET /models: every version of every project's registered model."""
    from ml_service.studio import mlruns

    studio = studio_of(request)
    return studio.render(request, "models.html", models=mlruns.models(studio.client(), studio.settings))
