"""The manifest of a batch job (<output>/_manifest.json): what the job is, and each finished chunk with its
row counts and the sha256 of its files. Written atomically (temporary file, then rename) after every chunk,
so after a kill it names exactly the chunks whose output is whole.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from ml_service.batch import BatchError

NAME = "_manifest.json"
IDENTITY = ("model_name", "model_version", "input_digest", "chunk_rows")


def load(output: Path) -> dict | None:
    """The manifest in output, or None when there is none."""
    path = output / NAME
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise BatchError(f"{path}: unreadable manifest ({exc}); delete the output folder to start over") from None


def save(output: Path, manifest: dict) -> None:
    """Write the manifest atomically."""
    temporary = output / f".{NAME}.{os.getpid()}.tmp"
    temporary.write_text(json.dumps(manifest, indent=1, sort_keys=True))
    os.replace(temporary, output / NAME)


def file_digest(path: Path) -> str | None:
    """sha256 of a file's bytes, None when it is missing."""
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except FileNotFoundError:
        return None


def verified(output: Path, chunks: dict) -> dict:
    """The chunks whose files are present with the recorded digests (the others are done again)."""
    good = {}
    for key, chunk in chunks.items():
        if file_digest(output / chunk["file"]) != chunk["sha256"]:
            continue
        if chunk.get("rejects_file") and file_digest(output / chunk["rejects_file"]) != chunk["rejects_sha256"]:
            continue
        good[key] = chunk
    return good


def check_same_job(previous: dict, identity: dict, output: Path) -> None:
    """Refuse to continue a job in output that scored other input, another model version or other chunks."""
    for key in IDENTITY:
        if str(previous.get(key)) != str(identity[key]):
            what = {"model_version": f"model {previous.get('model_name')} version {previous.get('model_version')}",
                    "model_name": f"model {previous.get('model_name')}",
                    "input_digest": "other input (its digest differs)",
                    "chunk_rows": f"--chunk-rows {previous.get('chunk_rows')}"}[key]
            raise BatchError(f"{output} holds a job with {what}; resume it with the same model version, input "
                             "and chunk size, or use another --output")
