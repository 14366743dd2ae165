"""ArchiveFiles@2 (Tasks/ArchiveFilesV2/task.json): rootFolderOrFile packed into archiveFile as zip or tar
(gz, bz2, xz or none); includeRootFolder (default true) keeps the folder's own name as the top level.
7z and wim need 7-Zip: refused, naming it."""
from __future__ import annotations

import os
import tarfile
import zipfile
from pathlib import Path

from ml_service.ci.runner.tasks.inputs import Input, TaskError, flag, read

NAME = "ArchiveFiles@2"
KIND = "local"
INPUTS = {
    "rootFolderOrFile": Input("$(Build.BinariesDirectory)"),
    "includeRootFolder": Input("true"),
    "archiveType": Input("zip"),
    "sevenZipCompression": Input("normal"),
    "tarCompression": Input("gz"),
    "archiveFile": Input("$(Build.ArtifactStagingDirectory)/$(Build.BuildId).zip"),
    "replaceExistingArchive": Input("true"),
    "verbose": Input("false"),
    "quiet": Input("false"),
}


def _members(root: Path, include_root: bool) -> list[tuple[Path, str]]:
    """(file, name in the archive) for every file and folder under root (or root itself, a file)."""
    if root.is_file():
        return [(root, root.name)]
    base = root.parent if include_root else root
    members = [(root, root.name)] if include_root else []
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted(dirs) + sorted(files):
            full = Path(folder) / name
            members.append((full, full.relative_to(base).as_posix()))
    return members


def run(given: dict, ctx: dict) -> str:
    """Write the archive; a message naming it."""
    values = read(NAME, INPUTS, given)
    expand = ctx.get("expand", lambda text: text)
    root = ctx["path"](expand(values["rootFolderOrFile"]))
    archive = ctx["path"](expand(values["archiveFile"]))
    kind = values["archiveType"].lower()
    if not root.exists():
        raise TaskError(f"{NAME}: rootFolderOrFile {root} does not exist")
    if kind not in ("zip", "tar"):
        raise TaskError(f"{NAME}: archiveType {kind} needs 7-Zip, which the local engine does not use: choose zip "
                        "or tar")
    if archive.exists() and flag(values["replaceExistingArchive"]):
        archive.unlink()
    archive.parent.mkdir(parents=True, exist_ok=True)
    members = _members(root, flag(values["includeRootFolder"]))
    if kind == "zip":
        with zipfile.ZipFile(archive, "a", zipfile.ZIP_DEFLATED) as packed:
            for path, name in members:
                if path.is_file():
                    packed.write(path, name)
    else:
        compression = values["tarCompression"].lower()
        mode = "w" if compression == "none" else f"w:{compression}"
        with tarfile.open(archive, mode) as packed:
            for path, name in members:
                packed.add(path, name, recursive=False)
    return f"archived {root} into {archive}"
