"""PublishBuildArtifacts@1 (Tasks/PublishBuildArtifactsV1/task.json): PathtoPublish (default
$(Build.ArtifactStagingDirectory)) published as ArtifactName (default drop) in the run's artifact store;
publishLocation FilePath copies to TargetPath/ArtifactName instead."""
from __future__ import annotations

import shutil

from ml_service.ci.runner.tasks.inputs import Input, TaskError, read

NAME = "PublishBuildArtifacts@1"
KIND = "local"
INPUTS = {
    "PathtoPublish": Input("$(Build.ArtifactStagingDirectory)"),
    "ArtifactName": Input("drop"),
    "publishLocation": Input("Container", aliases=("ArtifactType",)),
    "TargetPath": Input(""),
    "Parallel": Input("false"),
    "ParallelCount": Input("8"),
    "StoreAsTar": Input("false"),
}


def run(given: dict, ctx: dict) -> str:
    """Publish; a message of what and where."""
    from ml_service.ci.runner.tasks import publish_artifact

    values = read(NAME, INPUTS, given)
    path = ctx.get("expand", lambda text: text)(values["PathtoPublish"])
    if values["publishLocation"].lower() == "filepath":
        if not values["TargetPath"]:
            raise TaskError(f"{NAME}: publishLocation FilePath needs TargetPath")
        target = ctx["path"](values["TargetPath"]) / values["ArtifactName"]
        shutil.copytree(ctx["path"](path), target, dirs_exist_ok=True)
        return f"published {path} to {target}"
    return publish_artifact(path, values["ArtifactName"], ctx)
