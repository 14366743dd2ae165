"""HelmInstaller@1 (Tasks/HelmInstallerV1/task.json): a local helm (Agent.ToolsDirectory/helm, else the one on
the step's PATH, else the one `make install` put in mlops's environment: this machine's tool cache) matching
helmVersionToInstall (default latest: any), its folder first on PATH for the rest of the job. Nothing is
downloaded here."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from ml_service.ci.runner.tasks.inputs import Input, TaskError, read

NAME = "HelmInstaller@1"
ALSO = ("HelmInstaller@0",)
KIND = "local"
INPUTS = {"helmVersionToInstall": Input("latest", aliases=("helmVersion",)), "checkLatestHelmVersion": Input("true")}


def find_helm(ctx: dict) -> str | None:
    """helm of the agent's tools folder, else of the step's PATH."""
    tools = Path(ctx["variables"].get("Agent.ToolsDirectory", "/nonexistent")) / "helm"
    for candidate in sorted(tools.glob("*/helm")) + sorted(tools.glob("helm")):
        if candidate.is_file():
            return str(candidate)
    return shutil.which("helm", path=ctx.get("path_env")) or shutil.which("helm", path=str(Path(sys.prefix) / "bin"))


def run(given: dict, ctx: dict) -> str:
    """Find helm, check its version, put its folder first on PATH."""
    values = read(NAME, INPUTS, given)
    helm = find_helm(ctx)
    if not helm:
        raise TaskError(f"{NAME}: no helm on this machine: install it (make install puts one in the project's "
                        "environment) or into Agent.ToolsDirectory/helm")
    shown = subprocess.run([helm, "version", "--short"], capture_output=True, text=True, timeout=60).stdout.strip()
    wanted = values["helmVersionToInstall"].strip().lstrip("v")
    if wanted.lower() != "latest" and not shown.lstrip("v").startswith(wanted):
        raise TaskError(f"{NAME}: helm {wanted} was asked for, the local helm is {shown} ({helm}); nothing is "
                        "downloaded here: install that version, or ask for latest")
    ctx["prepend_path"](str(Path(helm).parent))
    return f"helm {shown} at {helm}"
