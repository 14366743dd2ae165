"""snapshot.zip of the source tree: never what git ignores, never a .env.

In a git work tree, git itself says what it ignores (every .gitignore, .git/info/exclude, the
global excludes) and .mlopsignore adds rules; outside one, .mlopsignore wins over .gitignore (like
.amlignore). `.env` files (local secrets) and `.git/` are left out whatever the rules say.
"""
from __future__ import annotations

import os
import subprocess
import zipfile
from pathlib import Path

# Never in a snapshot, whatever the ignore files say (last, so no `!` rule brings them back).
ALWAYS_IGNORED = [".git/", ".env", ".env.*"]


def ignore_spec(root: Path, extra: list[str] | None = None):
    """The ignore rules: .mlopsignore wins over .gitignore when both exist (like .amlignore)."""
    import pathspec

    lines = list(extra or [])
    for name in (".mlopsignore", ".gitignore"):
        path = root / name
        if path.is_file():
            lines += path.read_text().splitlines()
            break
    return pathspec.GitIgnoreSpec.from_lines(lines + ALWAYS_IGNORED)


def git_ignored(root: Path) -> tuple[set[str], set[str]] | None:
    """(files, folders) git ignores under root, relative posix paths; None outside a git work tree."""
    try:
        result = subprocess.run(["git", "-C", str(root), "ls-files", "--others", "--ignored", "--exclude-standard",
                                 "--directory", "-z"], capture_output=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if result.returncode != 0:
        return None
    paths = [p for p in result.stdout.decode(errors="surrogateescape").split("\0") if p]
    return {p for p in paths if not p.endswith("/")}, {p.rstrip("/") for p in paths if p.endswith("/")}


def snapshot_files(root: Path, extra_ignores: list[str] | None = None) -> list[str]:
    """Relative paths (posix) of the files that go into the snapshot, sorted."""
    root = Path(root)
    ignored = git_ignored(root)
    if ignored is None:
        spec = ignore_spec(root, extra_ignores)
        ignored_files, ignored_dirs = set(), set()
    else:  # git decides what it ignores; .mlopsignore adds rules
        import pathspec

        mlopsignore = root / ".mlopsignore"
        lines = list(extra_ignores or []) + (mlopsignore.read_text().splitlines() if mlopsignore.is_file() else [])
        spec = pathspec.GitIgnoreSpec.from_lines(lines + ALWAYS_IGNORED)
        ignored_files, ignored_dirs = ignored
    files = []
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = Path(dirpath).relative_to(root)
        # Prune ignored directories so large ones (.venv, .mlops) are never walked.
        dirnames[:] = sorted(
            d for d in dirnames if (rel_dir / d).as_posix() not in ignored_dirs
            and not spec.match_file(f"{(rel_dir / d).as_posix()}/")
        )
        for name in filenames:
            rel = (rel_dir / name).as_posix()
            if rel not in ignored_files and not spec.match_file(rel):
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
