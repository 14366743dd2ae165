"""minimatch patterns as the file tasks use them (azure-pipelines-task-lib `find` + `match`): `**` crosses
folders, `*` and `?` do not, `{a,b}` alternatives, a leading `!` excludes; dot files match (dot: true)."""
from __future__ import annotations

import os
import re
from pathlib import Path


def _regex(pattern: str) -> re.Pattern:
    out, i = [], 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("/**", i) and i + 3 == len(pattern):
            out.append("(?:/.*)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        elif pattern[i] == "{" and "}" in pattern[i:]:
            end = pattern.index("}", i)
            out.append("(?:" + "|".join(re.escape(p) for p in pattern[i + 1:end].split(",")) + ")")
            i = end + 1
        elif pattern[i] == "[" and "]" in pattern[i + 1:]:
            end = pattern.index("]", i + 1)
            out.append(pattern[i:end + 1].replace("[!", "[^"))
            i = end + 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out) + r"\Z")


def matches(path: str, patterns: list[str]) -> bool:
    """Does path (relative, with /) match the patterns: an include matches it and no later exclude does."""
    keep = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        body = pattern[1:] if negate else pattern
        body = body[2:] if body.startswith("./") else body
        if _regex(body).match(path):
            keep = not negate
    return keep


def find(root: Path, patterns: list[str], folders: bool = False) -> list[Path]:
    """Files (and folders, when asked) under root whose path relative to root matches the patterns."""
    root = Path(root)
    found = []
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        names = sorted(files) + (dirs if folders else [])
        for name in names:
            full = Path(folder) / name
            if matches(full.relative_to(root).as_posix(), patterns):
                found.append(full)
    return found


def find_absolute(patterns: list[str], base: Path) -> list[Path]:
    """Files matching patterns that may be absolute (ExtractFiles archiveFilePatterns): each pattern is
    searched from its longest folder prefix without wildcards."""
    found: list[Path] = []
    for pattern in patterns:
        if pattern.startswith("!"):
            continue
        full = pattern if os.path.isabs(pattern) else str(Path(base) / pattern)
        parts = full.split("/")
        fixed = []
        for part in parts:
            if any(c in part for c in "*?[{"):
                break
            fixed.append(part)
        root = Path("/".join(fixed) or "/")
        if len(fixed) == len(parts):
            if root.is_file():
                found.append(root)
            continue
        rest = "/".join(parts[len(fixed):])
        found += [p for p in find(root, [rest]) if p not in found]
    excludes = [p[1:] for p in patterns if p.startswith("!")]
    return [p for p in found if not any(_regex(e).match(str(p)) for e in excludes)]
