"""Step reuse keys: a step is reused when its code, parameters, inputs and requirements are unchanged."""
from __future__ import annotations

import hashlib
import importlib.util
import json
import sys
from pathlib import Path

from ml_service.pipelines.definition import Pipeline, Step

KEY_TAG = "mlops.step.key"
OUTPUT_DIGEST_TAG = "mlops.step.output_digest"  # on a step run that executed: digest_path of its outputs


def digest_path(path: Path, skip: tuple[str, ...] = ()) -> str:
    """sha256 of a file, or of a folder's relative paths and file contents (less the relative paths in skip)."""
    h = hashlib.sha256()
    path = Path(path)
    if path.is_file():
        _hash_file(h, path)
    elif path.is_dir():
        for file in sorted(p for p in path.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
            if file.relative_to(path).as_posix() in skip:
                continue
            h.update(file.relative_to(path).as_posix().encode() + b"\0")
            _hash_file(h, file)
    else:
        raise FileNotFoundError(path)
    return h.hexdigest()


def digest_text(text: str) -> str:
    """sha256 of a string."""
    return hashlib.sha256(text.encode()).hexdigest()


def _hash_file(h, file: Path) -> None:
    with open(file, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            h.update(chunk)


def function_file(function: str) -> Path | None:
    """The source file that defines 'module:function', found without importing the module."""
    module = function.split(":", 1)[0]
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    return Path(spec.origin) if spec and spec.origin else None


def code_digests(step: Step, root: Path) -> dict[str, str]:
    """Digests of the step's own module and the code paths it declares."""
    paths: dict[str, Path] = {}
    own = function_file(step.function)
    if own is not None:
        paths[step.function] = own
    for rel in step.code:
        paths[rel] = root / rel
    return {name: digest_path(path) for name, path in sorted(paths.items()) if path.exists()}


def step_key(step: Step, pipeline: Pipeline, params: dict, input_digests: dict[str, str], root: Path) -> str:
    """The reuse key of a step for this run."""
    material = {
        "function": step.function,
        "params": params,
        "inputs": input_digests,
        "code": code_digests(step, root),
        "requirements": {r: digest_path(root / r) for r in pipeline.requirements if (root / r).exists()},
        "python": list(sys.version_info[:2]),
    }
    return digest_text(json.dumps(material, sort_keys=True, default=str))
