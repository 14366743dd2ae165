"""DeleteFiles@1 (Tasks/DeleteFilesV1/task.json): files and folders of SourceFolder matching Contents."""
from __future__ import annotations

import shutil

from ml_service.ci.runner.tasks.inputs import Input, flag, lines, read
from ml_service.ci.runner.tasks.minimatch import find

NAME = "DeleteFiles@1"
KIND = "local"
INPUTS = {
    "SourceFolder": Input(""),
    "Contents": Input("myFileShare"),
    "RemoveSourceFolder": Input("false"),
    "RemoveDotFiles": Input("false"),
}


def run(given: dict, ctx: dict) -> str:
    """Delete the matches; a message of how many."""
    values = read(NAME, INPUTS, given)
    source = ctx["path"](values["SourceFolder"] or ctx["variables"]["System.DefaultWorkingDirectory"])
    if not source.is_dir():
        return f"{source} does not exist: nothing to delete"
    patterns = lines(values["Contents"])
    removed = 0
    for match in sorted(find(source, patterns, folders=True), key=lambda p: len(p.parts)):
        if not match.exists() and not match.is_symlink():
            continue
        if match.name.startswith(".") and not flag(values["RemoveDotFiles"]) and not any(
                p.startswith(".") or "/." in p for p in patterns):
            continue
        if match.is_dir() and not match.is_symlink():
            shutil.rmtree(match)
        else:
            match.unlink()
        removed += 1
    if flag(values["RemoveSourceFolder"]):
        shutil.rmtree(source, ignore_errors=True)
    return f"deleted {removed} item(s) under {source}"
