"""UsePythonVersion@0 (Tasks/UsePythonVersionV0/task.json): a Python of the machine matching versionSpec
(3.x, 3.10, >=3.9, 3.11.x), never mlops's own environment. Its folder is laid out as the agent's tool cache
(Agent.ToolsDirectory/Python/<version>/<arch> with bin/python, python3 and pip), set as the output variable
pythonLocation and, with addToPath (default true), put first on PATH for the rest of the job. No match:
the step fails naming versionSpec (Azure: "did not match any version in Agent.ToolsDirectory")."""
from __future__ import annotations

import glob
import os
import re
import subprocess
import sys
from pathlib import Path

from ml_service.ci.runner.tasks.inputs import Input, TaskError, flag, read

NAME = "UsePythonVersion@0"
KIND = "local"
INPUTS = {
    "versionSpec": Input("3.x"),
    "disableDownloadFromRegistry": Input("false"),
    "allowUnstable": Input("false"),
    "githubToken": Input(""),
    "addToPath": Input("true"),
    "architecture": Input("x64"),
}
SEARCH = ("/usr/bin/python3*", "/usr/local/bin/python3*", os.path.expanduser("~/.pyenv/versions/*/bin/python3"))


def _version(python: str) -> tuple[int, ...] | None:
    try:
        done = subprocess.run([python, "-c", "import sys; print('.'.join(map(str, sys.version_info[:3])))"],
                              capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    text = done.stdout.strip()
    return tuple(int(p) for p in text.split(".")) if done.returncode == 0 and re.fullmatch(r"\d+\.\d+\.\d+", text) \
        else None


def satisfies(version: tuple[int, ...], spec: str) -> bool:
    """Does version satisfy a semver spec as the task reads it: 3, 3.x, 3.10, 3.10.x, >=3.9, <3.12, ranges."""
    for clause in spec.replace(",", " ").split():
        match = re.fullmatch(r"(>=|<=|>|<|=|~|\^)?v?(\d+)(?:\.(\d+|x|\*))?(?:\.(\d+|x|\*))?", clause.strip())
        if not match:
            raise TaskError(f"{NAME}: versionSpec {spec!r} is not a version range")
        op = match.group(1) or "="
        parts = [int(p) for p in match.groups()[1:] if p is not None and p not in ("x", "*")]
        have = version[:len(parts)]
        if op == "=" and have != tuple(parts):
            return False
        if op in (">=", ">", "<=", "<"):
            full = version[:len(parts)]
            ok = {">=": full >= tuple(parts), ">": full > tuple(parts), "<=": full <= tuple(parts),
                  "<": full < tuple(parts)}[op]
            if not ok:
                return False
        if op in ("~", "^") and (version[:1] != tuple(parts[:1]) or version[:len(parts)] < tuple(parts)):
            return False
    return True


def candidates() -> list[str]:
    """Interpreters of the machine (never the engine's own environment)."""
    own = Path(sys.prefix).resolve()
    found = []
    for pattern in SEARCH:
        for path in sorted(glob.glob(pattern)):
            if re.search(r"python3(\.\d+)?$", path) and os.access(path, os.X_OK) and \
                    own not in Path(path).resolve().parents and path not in found:
                found.append(path)
    return found


def _tool_folder(python: str, version: tuple[int, ...], tools: Path, arch: str) -> Path:
    """Agent.ToolsDirectory/Python/<version>/<arch> with bin/python, bin/python3 and bin/pip."""
    location = tools / "Python" / ".".join(map(str, version)) / arch
    bin_dir = location / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    for name in ("python", "python3", f"python{version[0]}.{version[1]}"):
        link = bin_dir / name
        if not link.exists():
            link.symlink_to(python)
    pip = bin_dir / "pip"
    if not pip.exists():
        pip.write_text(f'#!/bin/sh\nexec "{python}" -m pip "$@"\n')
        pip.chmod(0o755)
    return location


def run(given: dict, ctx: dict) -> str:
    """Find the Python, lay out its tool folder, set pythonLocation and PATH."""
    values = read(NAME, INPUTS, given)
    spec = values["versionSpec"].strip()
    matching = []
    for python in candidates():
        version = _version(python)
        if version and satisfies(version, spec):
            matching.append((version, python))
    if not matching:
        raise TaskError(f"{NAME}: versionSpec {spec} did not match any Python on this machine (looked in "
                        f"{', '.join(SEARCH)}); install one, or change versionSpec")
    version, python = max(matching)
    tools = Path(ctx["variables"].get("Agent.ToolsDirectory") or Path(ctx["variables"]["Agent.TempDirectory"]).parent
                 / "_tool")
    location = _tool_folder(python, version, tools, values["architecture"])
    ctx["set_output"]("pythonLocation", str(location))
    if flag(values["addToPath"]):
        ctx["prepend_path"](str(location))
        ctx["prepend_path"](str(location / "bin"))
    return f"Python {'.'.join(map(str, version))} ({python}) at {location}"
