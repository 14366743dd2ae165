"""ExtractFiles@1 (Tasks/ExtractFilesV1/task.json): each archive matching archiveFilePatterns (zip, tar,
tar.gz/.bz2/.xz) extracted into destinationFolder, cleaned first by default."""
from __future__ import annotations

import shutil
import tarfile
import zipfile
from pathlib import Path

from ml_service.ci.runner.tasks.inputs import Input, TaskError, flag, lines, read
from ml_service.ci.runner.tasks.minimatch import find_absolute

NAME = "ExtractFiles@1"
KIND = "local"
INPUTS = {
    "archiveFilePatterns": Input("**/*.zip"),
    "destinationFolder": Input(required=True),
    "cleanDestinationFolder": Input("true"),
    "overwriteExistingFiles": Input("false"),
    "pathToSevenZipTool": Input(""),
}


def _inside(base: Path, name: str) -> bool:
    target = (base / name).resolve()
    return target == base.resolve() or base.resolve() in target.parents


def run(given: dict, ctx: dict) -> str:
    """Extract the archives; a message of how many."""
    values = read(NAME, INPUTS, given)
    base = Path(ctx["variables"]["System.DefaultWorkingDirectory"])
    archives = find_absolute(lines(values["archiveFilePatterns"]), base)
    if not archives:
        raise TaskError(f"{NAME}: no archive matches {values['archiveFilePatterns']!r}")
    dest = ctx["path"](values["destinationFolder"])
    if flag(values["cleanDestinationFolder"]) and dest.is_dir():
        shutil.rmtree(dest)
    dest.mkdir(parents=True, exist_ok=True)
    for archive in archives:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as packed:
                for name in packed.namelist():
                    if not _inside(dest, name):
                        raise TaskError(f"{NAME}: {archive} holds a path outside the destination: {name}")
                packed.extractall(dest)
        elif tarfile.is_tarfile(archive):
            with tarfile.open(archive) as packed:
                packed.extractall(dest, filter="data")
        else:
            raise TaskError(f"{NAME}: {archive} is neither zip nor tar (7z and other formats need 7-Zip)")
    return f"extracted {len(archives)} archive(s) into {dest}"
