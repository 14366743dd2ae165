"""`mlops ci expand FILE [--param K=V] [--branch B]`: the pipeline as Azure's "Download full YAML" shows it.

Templates inlined (also `template: file@alias` through mlops.yml ci.repositories), parameters applied,
${{ }} evaluated with the compile-time predefined variables of the branch given (default: the checkout's);
$[ ] and $( ) stay as written and a matrix stays under `strategy:` (both are read when the run starts).
"""
from __future__ import annotations

import tempfile
from pathlib import Path
from types import SimpleNamespace
from typing import Any


def plain(node: Any) -> Any:
    """The document as plain dicts and lists (yaml.safe_dump refuses our located Mapping)."""
    if isinstance(node, dict):
        return {plain(k) if isinstance(k, (dict, list)) else k: plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [plain(v) for v in node]
    return node


def expand(settings, file: Path, params: dict[str, str], branch: str = "", cache: Path | None = None) -> dict:
    """The expanded pipeline document of file."""
    from ml_service.ci.server import service
    from ml_service.ci.model.repositories import Templates
    from ml_service.ci.model.template import Compiler

    found_branch, commit = service.git_facts(settings.root)
    run = SimpleNamespace(pipeline=Path(file).stem, branch=branch or found_branch or "main", reason="Manual",
                          commit_sha=commit, requested_by=service.identity(settings), id=0)
    templates = Templates(dict(settings.ci.repositories), cache or Path(tempfile.mkdtemp()))
    return Compiler(settings.root, service.compile_time(settings, run), templates).compile(Path(file), params)
