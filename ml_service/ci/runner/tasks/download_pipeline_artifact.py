"""DownloadPipelineArtifact@2 (Tasks/DownloadPipelineArtifactV2/task.json; task reference
download-pipeline-artifact-v2): artifacts of this run (source current) or of another pipeline's run (source
specific: definition, runVersion latest | latestFromBranch | specific, preferTriggeringPipeline; only succeeded runs
unless allowPartiallySucceededBuilds / allowFailedBuilds) copied to targetPath (default $(Pipeline.Workspace)):
one named artifact straight into targetPath, all artifacts each into targetPath/<artifact>; itemPattern
(minimatch) picks the files. `project` must be this project; build tags are not kept here, so `tags` is refused."""
from __future__ import annotations

import shutil

from ml_service.ci.runner.tasks.inputs import Input, TaskError, check, flag, lines, read
from ml_service.ci.runner.tasks.minimatch import find

NAME = "DownloadPipelineArtifact@2"
KIND = "local"
INPUTS = {
    "buildType": Input("current", aliases=("source",), choices=("current", "specific")),
    "project": Input(""),
    "definition": Input("", aliases=("pipeline",)),
    "specificBuildWithTriggering": Input("false", aliases=("preferTriggeringPipeline",)),
    "buildVersionToDownload": Input("latest", aliases=("runVersion",), choices=("latest", "latestFromBranch",
                                                                                "specific")),
    "branchName": Input("refs/heads/master", aliases=("runBranch",)),
    "pipelineId": Input("", aliases=("runId", "buildId")),
    "tags": Input(""),
    "allowPartiallySucceededBuilds": Input("false"),
    "allowFailedBuilds": Input("false"),
    "artifactName": Input("", aliases=("artifact",)),
    "itemPattern": Input("**", aliases=("patterns",)),
    "targetPath": Input("$(Pipeline.Workspace)", aliases=("path", "downloadPath")),
}


def problems(given: dict) -> list[str]:
    """What in the inputs as written cannot run (checked before the run)."""
    found = check(NAME, INPUTS, given)
    values = {str(k).lower(): str(v).strip() for k, v in (given or {}).items()}
    source = values.get("buildtype", values.get("source", "current")).lower()
    if source == "specific" and not (values.get("definition") or values.get("pipeline")):
        found.append(f"{NAME}: source specific needs definition (alias pipeline): the pipeline whose run to download")
    if values.get("tags"):
        found.append(f"{NAME}: tags {values['tags']!r}: runs here carry no build tags, so no run could match; "
                     "remove tags or name the run (runVersion specific, runId)")
    return found


def accepted(values: dict) -> tuple[str, ...]:
    """The run results a specific download may take from (task.json: succeeded only unless allowed)."""
    return ("succeeded", *(("succeededWithIssues",) if flag(values["allowPartiallySucceededBuilds"]) else ()),
            *(("failed",) if flag(values["allowFailedBuilds"]) else ()))


def run(given: dict, ctx: dict) -> str:
    """Download; a message of what and where."""
    from ml_service.ci.runner.tasks import specific_run

    for problem in problems(given):
        raise TaskError(problem)
    values = read(NAME, INPUTS, given)
    expand = ctx.get("expand", lambda text: text)
    project = values["project"]
    if project and project not in (ctx["variables"].get("System.TeamProject"), ctx["variables"].get(
            "System.TeamProjectId")):
        raise TaskError(f"{NAME}: project {project!r} is not this project "
                        f"({ctx['variables'].get('System.TeamProject')}): runs of other projects are not here")
    if values["buildType"].lower() == "specific":
        run_id = specific_run({"pipeline": values["definition"], "runVersion": values["buildVersionToDownload"],
                               "runBranch": values["branchName"], "runId": values["pipelineId"],
                               "preferTriggeringPipeline": values["specificBuildWithTriggering"]}, ctx,
                              accepted(values))
    else:
        run_id = ctx["run_id"]
    root = ctx["store"].artifacts_dir(run_id)
    name = values["artifactName"]
    names = [name] if name else sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    if not names or not all((root / n).is_dir() for n in names):
        raise TaskError(f"{NAME}: run {run_id} has no artifact '{name or '*'}'")
    base = ctx["path"](expand(values["targetPath"]))
    patterns = lines(values["itemPattern"]) or ["**"]
    copied = 0
    for artifact in names:
        # one named artifact: itemPattern matches paths inside it; all artifacts: <artifact>/<path>
        # (docs/pipelines/artifacts/pipeline-artifacts.md "Artifacts selection")
        files = find(root / artifact, patterns) if name else \
            [p for p in find(root, patterns) if p.relative_to(root).parts[0] == artifact]
        target = base if name else base / artifact
        for file in files:
            destination = target / file.relative_to(root / artifact)
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(file, destination)
            copied += 1
    return f"downloaded {copied} file(s) of artifact(s) {', '.join(names)} of run {run_id} to {base}"
