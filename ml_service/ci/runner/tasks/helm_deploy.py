"""HelmDeploy@0 (Tasks/HelmDeployV0/task.json) with connectionType None: the local helm runs the command
(package, lint, template, and the others against the kubeconfig of this machine). An Azure Resource Manager or
Kubernetes service connection has no local meaning: preflight.py names such a step before the run."""
from __future__ import annotations

import shlex
import shutil
import subprocess

from ml_service.ci.runner.tasks.inputs import Input, TaskError, flag, read

NAME = "HelmDeploy@0"
KIND = "local"
INPUTS = {
    "connectionType": Input("Azure Resource Manager"),
    "namespace": Input(""),
    "command": Input("ls"),
    "chartType": Input("Name"),
    "chartName": Input(""),
    "chartPath": Input(""),
    "version": Input("", aliases=("chartVersion",)),
    "releaseName": Input(""),
    "overrideValues": Input(""),
    "valueFile": Input(""),
    "destination": Input("$(Build.ArtifactStagingDirectory)"),
    "arguments": Input(""),
    "failOnStderr": Input("false"),
    "install": Input("true"),
    "waitForExecution": Input("true"),
}


def needs_cloud(given: dict) -> bool:
    """Does this HelmDeploy step need a service connection (no local meaning)?"""
    return read(NAME, INPUTS, given)["connectionType"].strip().lower() != "none"


def argv(values: dict, ctx: dict) -> list[str]:
    """The helm command line the task runs."""
    command = values["command"].strip().lower()
    chart = str(ctx["path"](values["chartPath"])) if values["chartType"].lower() == "filepath" or \
        values["chartPath"] else values["chartName"]
    args = ["helm", command]
    if command == "package":
        args += [chart, "--destination", str(ctx["path"](ctx["expand"](values["destination"])))]
        if values["version"]:
            args += ["--version", values["version"]]
    elif command in ("install", "upgrade"):
        args += [values["releaseName"] or "release", chart]
        if command == "upgrade" and flag(values["install"]):
            args.append("--install")
        if values["valueFile"]:
            args += ["-f", str(ctx["path"](values["valueFile"]))]
        if values["overrideValues"]:
            args += ["--set", values["overrideValues"].replace("\n", ",")]
        if flag(values["waitForExecution"]):
            args.append("--wait")
    elif command in ("lint", "template"):
        args += [chart]
    if values["namespace"] and command not in ("package", "lint"):
        args += ["--namespace", values["namespace"]]
    return args + shlex.split(values["arguments"])


def run(given: dict, ctx: dict) -> str:
    """Run helm; its output is the step's log."""
    values = read(NAME, INPUTS, given)
    if needs_cloud(given):
        raise TaskError(f"{NAME}: connectionType {values['connectionType']} needs a service connection, which "
                        "does not exist here: use connectionType None (the local kubeconfig)")
    command = argv(values, ctx)
    command[0] = shutil.which("helm", path=ctx.get("path_env")) or "helm"
    done = subprocess.run(command, capture_output=True, text=True, timeout=1800)
    output = (done.stdout + done.stderr).strip()
    ctx["set_output"]("helmExitCode", str(done.returncode))
    ctx["set_output"]("helmOutput", done.stdout.strip()[:4000])
    if done.returncode != 0 or (flag(values["failOnStderr"]) and done.stderr.strip()):
        raise TaskError(f"{NAME}: {' '.join(command)} failed ({done.returncode}): {output[-1000:]}")
    return output or f"{' '.join(command)}: done"
