"""CopyFiles@2 (Tasks/CopyFilesV2/task.json): files of SourceFolder matching Contents copied to TargetFolder,
keeping their relative paths (or flattened); OverWrite false keeps a file already there."""
from __future__ import annotations

import shutil

from ml_service.ci.runner.tasks.inputs import Input, TaskError, flag, lines, read
from ml_service.ci.runner.tasks.minimatch import find

NAME = "CopyFiles@2"
KIND = "local"
INPUTS = {
    "SourceFolder": Input(""),
    "Contents": Input("**"),
    "TargetFolder": Input(required=True),
    "CleanTargetFolder": Input("false"),
    "OverWrite": Input("false"),
    "flattenFolders": Input("false"),
    "preserveTimestamp": Input("false"),
    "retryCount": Input("0"),
    "delayBetweenRetries": Input("1000"),
    "ignoreMakeDirErrors": Input("false"),
}


def run(given: dict, ctx: dict) -> str:
    """Copy the matching files; a message of what was copied."""
    values = read(NAME, INPUTS, given)
    source = ctx["path"](values["SourceFolder"] or ctx["variables"]["Build.SourcesDirectory"])
    target = ctx["path"](values["TargetFolder"])
    if not source.is_dir():
        raise TaskError(f"{NAME}: SourceFolder {source} does not exist")
    if flag(values["CleanTargetFolder"]) and target.is_dir():
        shutil.rmtree(target)
    target.mkdir(parents=True, exist_ok=True)
    copied = 0
    for file in find(source, lines(values["Contents"]) or ["**"]):
        if file.is_dir() or (target in file.parents):
            continue
        dest = target / (file.name if flag(values["flattenFolders"]) else file.relative_to(source))
        if dest.exists() and not flag(values["OverWrite"]):
            continue
        dest.parent.mkdir(parents=True, exist_ok=True)
        (shutil.copy2 if flag(values["preserveTimestamp"]) else shutil.copy)(file, dest)
        copied += 1
    return f"copied {copied} file(s) from {source} to {target}"
