"""snapshot.zip of the source tree, honouring .mlopsignore (if present) else .gitignore."""
from __future__ import annotations

import os
import zipfile
from pathlib import Path

# Never worth snapshotting, whatever the ignore files say.
ALWAYS_IGNORED = [".git/"]


def ignore_spec(root: Path, extra: list[str] | None = None):
    """The ignore rules: .mlopsignore wins over .gitignore when both exist (like .amlignore)."""
    import pathspec

    lines = list(ALWAYS_IGNORED) + list(extra or [])
    for name in (".mlopsignore", ".gitignore"):
        path = root / name
        if path.is_file():
            lines += path.read_text().splitlines()
            break
    return pathspec.GitIgnoreSpec.from_lines(lines)


def snapshot_files(root: Path, extra_ignores: list[str] | None = None) -> list[str]:
    """Relative paths (posix) of the files that go into the snapshot, sorted."""
    spec = ignore_spec(root, extra_ignores)
    files = []
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = Path(dirpath).relative_to(root)
        # Prune ignored directories so large ones (.venv, .mlops) are never walked.
        dirnames[:] = sorted(
            d for d in dirnames if not spec.match_file(f"{(rel_dir / d).as_posix()}/")
        )
        for name in filenames:
            rel = (rel_dir / name).as_posix()
            if not spec.match_file(rel):
                files.append(rel)
    return sorted(files)


def write_snapshot(root: Path, dest: Path, extra_ignores: list[str] | None = None) -> int:
    """Zip the source tree into dest; return the number of files written."""
    files = snapshot_files(root, extra_ignores)
    dest.parent.mkdir(parents=True, exist_ok=True)
    written = 0
    with zipfile.ZipFile(dest, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for rel in files:
            try:
                archive.write(root / rel, rel)
            except FileNotFoundError:  # removed while we walked (a tool's scratch file): not part of the tree
                continue
            written += 1
    return written
