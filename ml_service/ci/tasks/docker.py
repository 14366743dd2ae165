"""Docker@2 (Tasks/DockerV2/task.json) with the local Docker engine: `build` (Dockerfile default **/Dockerfile,
buildContext default the Dockerfile's folder, tags default $(Build.BuildId), arguments). push, buildAndPush
and login need a container registry connection: preflight.py names such a step before the run."""
from __future__ import annotations

import glob
import shlex
import subprocess
from pathlib import Path

from ml_service.ci.tasks.inputs import Input, TaskError, lines, read

NAME = "Docker@2"
KIND = "local"
INPUTS = {
    "containerRegistry": Input(""),
    "repository": Input(""),
    "command": Input("buildAndPush"),
    "Dockerfile": Input("**/Dockerfile"),
    "buildContext": Input(""),
    "tags": Input("$(Build.BuildId)"),
    "arguments": Input(""),
    "addPipelineData": Input("true"),
    "addBaseImageData": Input("true"),
    "container": Input(""),
}
LOCAL_COMMANDS = ("build",)


def needs_registry(given: dict) -> bool:
    """Does this Docker@2 step need a registry connection (push, buildAndPush, login, logout)?"""
    return read(NAME, INPUTS, given)["command"].strip().lower() not in LOCAL_COMMANDS


def run(given: dict, ctx: dict) -> str:
    """docker build with the task's tags and labels."""
    values = read(NAME, INPUTS, given)
    if needs_registry(given):
        raise TaskError(f"{NAME}: command {values['command']} needs a container registry connection, which does "
                        "not exist here: use command build, and push with a script step to a registry you configure")
    base = Path(ctx["variables"]["System.DefaultWorkingDirectory"])
    pattern = ctx["expand"](values["Dockerfile"])
    found = sorted(glob.glob(str(ctx["path"](pattern)), recursive=True))
    if not found:
        raise TaskError(f"{NAME}: no Dockerfile matches {pattern!r} under {base}")
    dockerfile = Path(found[0])
    context = ctx["path"](values["buildContext"]) if values["buildContext"] and values["buildContext"] != "**" \
        else dockerfile.parent
    repository = values["repository"].lower()
    tags = [ctx["expand"](t) for t in lines(values["tags"])] or [ctx["variables"]["Build.BuildId"]]
    argv = ["docker", "build", "-f", str(dockerfile)]
    for tag in tags:
        argv += ["-t", f"{repository}:{tag}" if repository else tag]
    if values["addPipelineData"].lower() == "true":
        argv += ["--label", f"com.azure.dev.pipelines.build.number={ctx['variables'].get('Build.BuildNumber', '')}"]
    argv += shlex.split(ctx["expand"](values["arguments"])) + [str(context)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=3600)
    if done.returncode != 0:
        raise TaskError(f"{NAME}: docker build failed ({done.returncode}): {(done.stdout + done.stderr)[-1500:]}")
    built = ", ".join(argv[i + 1] for i, a in enumerate(argv) if a == "-t")
    return (done.stdout + done.stderr)[-4000:] + f"\nbuilt {built}"
