"""Docker@2 (Tasks/DockerV2/task.json) with the local Docker engine: `build` (Dockerfile default **/Dockerfile,
buildContext default the Dockerfile's folder, tags default $(Build.BuildId), arguments), `push`, `buildAndPush`
(its `arguments` are ignored, as documented), `login`, `logout`, `start` and `stop` (of `container`).

A containerRegistry input names a Docker registry service connection; here mlops.yml `ci.registries` maps
that name to a registry address (`127.0.0.1:5000`, `registry.example.com/team`), and the image is
`<address>/<repository>:<tag>` as the agent names it (the connection's login server before the repository).
The credentials are this machine's Docker credentials (`docker login <host>` once, Docker's own store):
`login` checks the mapped registry is named and writes nothing, `logout` never logs this machine out.
An unmapped connection, or a push/login without one (which would go to Docker Hub), stops the run before it
starts: preflight.py names the step."""
from __future__ import annotations

import glob
import shlex
import subprocess
from pathlib import Path

from ml_service.ci.runner.tasks.inputs import Input, TaskError, lines, read

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
COMMANDS = ("build", "push", "buildandpush", "login", "logout", "start", "stop")
WITH_REGISTRY = ("push", "buildandpush", "login")  # without a connection these would go to Docker Hub


def registry_problem(given: dict, registries: dict) -> str:
    """Why this step cannot run with these ci.registries ('' when it can)."""
    values = read(NAME, INPUTS, given)
    command = values["command"].strip().lower()
    connection = values["containerRegistry"].strip()
    if command not in COMMANDS:
        return f"{NAME}: unknown command {values['command']!r} (one of {', '.join(COMMANDS)})"
    if command in ("logout", "start", "stop"):
        return ""
    if connection and connection not in registries:
        return (f"{NAME}: the registry connection '{connection}' is not mapped: map it to a registry address in "
                f"mlops.yml (ci: {{registries: {{'{connection}': <host[:port][/namespace]>}}}})")
    if not connection and command in WITH_REGISTRY:
        return (f"{NAME}: command {values['command']} without containerRegistry would use Docker Hub: name a "
                "registry connection and map it in mlops.yml ci.registries")
    return ""


def _docker(argv: list[str], what: str, timeout: int = 3600) -> str:
    done = subprocess.run(["docker", *argv], capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise TaskError(f"{NAME}: docker {what} failed ({done.returncode}): {(done.stdout + done.stderr)[-1500:]}")
    return (done.stdout + done.stderr)[-4000:]


def _images(values: dict, ctx: dict, address: str) -> list[str]:
    repository = ctx["expand"](values["repository"]).strip().lower()
    if address and not repository:
        raise TaskError(f"{NAME}: input 'repository' is required with containerRegistry")
    name = f"{address.rstrip('/')}/{repository}" if address else repository
    tags = [ctx["expand"](t) for t in lines(values["tags"])] or [ctx["variables"]["Build.BuildId"]]
    return [f"{name}:{tag}" if name else tag for tag in tags]


def _build(values: dict, ctx: dict, images: list[str], arguments: str) -> str:
    base = Path(ctx["variables"]["System.DefaultWorkingDirectory"])
    pattern = ctx["expand"](values["Dockerfile"])
    found = sorted(glob.glob(str(ctx["path"](pattern)), recursive=True))
    if not found:
        raise TaskError(f"{NAME}: no Dockerfile matches {pattern!r} under {base}")
    dockerfile = Path(found[0])
    context = ctx["path"](values["buildContext"]) if values["buildContext"] and values["buildContext"] != "**" \
        else dockerfile.parent
    argv = ["build", "-f", str(dockerfile)]
    for image in images:
        argv += ["-t", image]
    if values["addPipelineData"].lower() == "true":
        argv += ["--label", f"com.azure.dev.pipelines.build.number={ctx['variables'].get('Build.BuildNumber', '')}"]
    argv += shlex.split(arguments) + [str(context)]
    return _docker(argv, "build") + f"\nbuilt {', '.join(images)}"


def run(given: dict, ctx: dict) -> str:
    """The step's command with the local Docker engine."""
    values = read(NAME, INPUTS, given)
    registries = ctx.get("registries") or {}
    problem = registry_problem(given, registries)
    if problem:
        raise TaskError(problem)
    command = values["command"].strip().lower()
    connection = values["containerRegistry"].strip()
    address = registries.get(connection, "") if connection else ""
    if command in ("start", "stop"):
        container = ctx["expand"](values["container"]).strip()
        if not container:
            raise TaskError(f"{NAME}: input 'container' is required with command {command}")
        return _docker([command, container], command, timeout=600)
    if command == "login":
        return f"{NAME}: registry '{connection}' is {address}: pushes use this machine's Docker credentials for it"
    if command == "logout":
        return f"{NAME}: logout leaves this machine's Docker credentials as they are"
    images = _images(values, ctx, address)
    out = ""
    if command in ("build", "buildandpush"):
        arguments = "" if command == "buildandpush" else ctx["expand"](values["arguments"])  # ignored, as documented
        out += _build(values, ctx, images, arguments)
    if command in ("push", "buildandpush"):
        for image in images:
            out += _docker(["push", image], f"push of {image}", timeout=1800) + f"\npushed {image}\n"
    return out
