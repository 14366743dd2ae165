"""DownloadBuildArtifacts@0 and @1 (Tasks/DownloadBuildArtifactsV0/V1 task.json): an artifact of this run
(buildType current) or of another pipeline's run (specific: definition, buildVersionToDownload) copied to
downloadPath/<artifactName>."""
from __future__ import annotations

from ml_service.ci.runner.tasks.inputs import Input, TaskError, read

NAME = "DownloadBuildArtifacts@1"
ALSO = ("DownloadBuildArtifacts@0",)
KIND = "local"
INPUTS = {
    "buildType": Input("current"),
    "project": Input(""),
    "definition": Input("", aliases=("pipeline",)),
    "specificBuildWithTriggering": Input("false"),
    "buildVersionToDownload": Input("latest"),
    "branchName": Input("refs/heads/master"),
    "buildId": Input(""),
    "tags": Input(""),
    "downloadType": Input("single"),
    "artifactName": Input(""),
    "itemPattern": Input("**"),
    "downloadPath": Input("$(System.ArtifactsDirectory)"),
    "cleanDestinationFolder": Input("false"),
}


def run(given: dict, ctx: dict) -> str:
    """Download; a message of what and where."""
    from ml_service.ci.runner.tasks import download_run_artifact, specific_run

    values = read(NAME, INPUTS, given)
    if values["downloadType"].lower() == "single" and not values["artifactName"]:
        raise TaskError(f"{NAME}: downloadType single needs artifactName")
    name = values["artifactName"] if values["downloadType"].lower() == "single" else ""
    path = str(ctx["path"](ctx.get("expand", lambda text: text)(values["downloadPath"])))
    if values["buildType"].lower() == "specific":
        run_id = specific_run({"pipeline": values["definition"], "runVersion": values["buildVersionToDownload"],
                               "runBranch": values["branchName"], "runId": values["buildId"],
                               "preferTriggeringPipeline": values["specificBuildWithTriggering"]}, ctx)
    else:
        run_id = ctx["run_id"]
    # downloadPath/<artifactName>/...: the artifact's own folder is kept (unlike DownloadPipelineArtifact's path)
    return download_run_artifact(run_id, name, path, ctx, keep_folder=True)
