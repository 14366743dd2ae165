"""PublishPipelineArtifact@1 (Tasks/PublishPipelineArtifactV1/task.json; task reference publish-pipeline-artifact-v1;
the `publish:` shortcut is the same task): the file or folder targetPath (default $(Pipeline.Workspace)) published
as the run's artifact `artifact` in the run store; publishLocation filepath copies it to fileSharePath/<artifact>
instead. Without a name the artifact gets one unique to the job (Azure: "a unique ID scoped to the job"; here
<stage>_<job>). A name already published in the run fails the step, as on Azure."""
from __future__ import annotations

import re
import shutil

from ml_service.ci.runner.tasks.inputs import Input, TaskError, check, read

NAME = "PublishPipelineArtifact@1"
KIND = "local"
INPUTS = {
    "targetPath": Input("$(Pipeline.Workspace)", aliases=("path",)),
    "artifact": Input("", aliases=("artifactName",)),
    "publishLocation": Input("pipeline", aliases=("artifactType",), choices=("pipeline", "filepath")),
    "fileSharePath": Input(""),
    "parallel": Input("false"),
    "parallelCount": Input("8"),
    "properties": Input(""),
}


def problems(given: dict) -> list[str]:
    """What in the inputs as written cannot run (checked before the run)."""
    found = check(NAME, INPUTS, given)
    values = {str(k).lower(): str(v) for k, v in (given or {}).items()}
    location = values.get("publishlocation", values.get("artifacttype", "pipeline")).strip().lower()
    if location == "filepath" and not values.get("filesharepath", "").strip():
        found.append(f"{NAME}: publishLocation filepath needs fileSharePath")
    return found


def default_name(ctx: dict) -> str:
    """The name of an artifact published without one: unique to the job."""
    variables = ctx["variables"]
    name = f"{variables.get('System.StageName', '')}_{variables.get('System.JobName', '')}".strip("_")
    return re.sub(r"[^\w.\-]", "_", name) or "Job"


def run(given: dict, ctx: dict) -> str:
    """Publish; a message of what and where."""
    from ml_service.ci.runner.tasks import publish_artifact

    for problem in problems(given):
        raise TaskError(problem)
    values = read(NAME, INPUTS, given)
    expand = ctx.get("expand", lambda text: text)
    name = values["artifact"] or default_name(ctx)
    path = expand(values["targetPath"])
    if values["publishLocation"].lower() == "filepath":
        source = ctx["path"](path)
        if not source.exists():
            raise TaskError(f"{NAME}: {source} does not exist")
        target = ctx["path"](expand(values["fileSharePath"])) / name
        if source.is_dir():
            shutil.copytree(source, target, dirs_exist_ok=True)
        else:
            target.mkdir(parents=True, exist_ok=True)
            shutil.copy(source, target / source.name)
        return f"published {source} to {target}"
    return publish_artifact(path, name, ctx)
