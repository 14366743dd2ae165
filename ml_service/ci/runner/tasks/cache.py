"""Cache@2 (Tasks/CacheV2/task.json; docs/pipelines/release/caching.md): `path` restored from a local cache
under the key (segments separated by |: a quoted string is itself, a file path or glob is the hash of the
files' contents); cacheHitVar is true on an exact hit, inexact on a restoreKeys prefix hit, false on a miss.
After a miss the folder is saved when the job ends successfully (as the post-job step does)."""
from __future__ import annotations

import glob
import hashlib
import shutil
from pathlib import Path

from ml_service.ci.runner.tasks.inputs import Input, TaskError, lines, read

NAME = "Cache@2"
KIND = "local"
INPUTS = {"key": Input(required=True), "path": Input(required=True), "cacheHitVar": Input(""),
          "restoreKeys": Input("")}


def fingerprint(key: str, base: Path) -> str:
    """The key's segments resolved: quoted strings as they are, file paths and globs as their contents' hash."""
    parts = []
    for segment in (s.strip() for s in key.split("|")):
        if len(segment) >= 2 and segment[0] == segment[-1] == '"':
            parts.append(segment[1:-1])
            continue
        files = sorted(Path(p) for p in glob.glob(str(base / segment), recursive=True) if Path(p).is_file())
        if files:
            digest = hashlib.sha256()
            for file in files:
                digest.update(file.read_bytes())
            parts.append(digest.hexdigest())
        else:
            parts.append(segment)
    return "|".join(parts)


def _folder(root: Path, text: str) -> Path:
    return root / hashlib.sha256(text.encode()).hexdigest()[:32]


def run(given: dict, ctx: dict) -> str:
    """Restore the cache (or note the miss and save the folder when the job ends)."""
    values = read(NAME, INPUTS, given)
    base = Path(ctx["variables"]["System.DefaultWorkingDirectory"])
    root = Path(ctx["store"].directory) / "cache"
    key = fingerprint(values["key"], base)
    target = ctx["path"](values["path"])
    exact = _folder(root, key)
    hit = "false"
    source = exact if (exact / "data").is_dir() else None
    if source is not None:
        hit = "true"
    else:
        for prefix in lines(values["restoreKeys"]):
            wanted = fingerprint(prefix, base)
            for index in sorted(root.glob("*/key"), key=lambda p: p.stat().st_mtime, reverse=True):
                if index.read_text().startswith(wanted) and (index.parent / "data").is_dir():
                    source, hit = index.parent, "inexact"
                    break
            if source is not None:
                break
    if source is not None:
        shutil.copytree(source / "data", target, dirs_exist_ok=True)
    if values["cacheHitVar"]:
        ctx["set_variable"](values["cacheHitVar"], hit)
    if hit != "true":
        def save(result_ok: bool) -> None:
            if not result_ok or not target.is_dir():
                return
            exact.mkdir(parents=True, exist_ok=True)
            if (exact / "data").exists():
                shutil.rmtree(exact / "data")
            shutil.copytree(target, exact / "data")
            (exact / "key").write_text(key)
        ctx["post_job"](save)
    if not values["path"]:
        raise TaskError(f"{NAME}: input 'path' is required")
    return f"cache {'restored' if source else 'miss'} for key {key} ({hit})"
