"""The engine's phases never reach backwards (issue 23, as nektos/act's pkg/model knows nothing of pkg/runner):
model/ imports nothing of runner/ or server/, runner/ nothing of server/ (the run store comes in as an argument;
a type-only import under TYPE_CHECKING is no import at run time), and nothing under ci/ imports the CLI. Read from
the sources' import statements, lazy ones inside functions included."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

import ml_service.ci

CI = Path(ml_service.ci.__file__).parent


def _type_only(tree: ast.Module) -> set[int]:
    """Ids of the import nodes under `if TYPE_CHECKING:`."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            found |= {id(n) for stmt in node.body for n in ast.walk(stmt)}
    return found


def imported(path: Path) -> list[str]:
    """Every module path an `import` or `from ... import` of path names at run time (submodules included)."""
    tree = ast.parse(path.read_text(), str(path))
    skip = _type_only(tree)
    names = []
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names += [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
    return names


def offenders(package: str, forbidden: tuple[str, ...]) -> list[str]:
    """`file: module` for each import under ci/<package> of a module under one of forbidden."""
    root = CI / package if package else CI
    return [f"{path.relative_to(CI)}: {name}" for path in sorted(root.rglob("*.py")) for name in imported(path)
            if any(name == f or name.startswith(f + ".") for f in forbidden)]


def test_every_module_of_the_engine_is_in_a_phase_package():
    loose = sorted(p.name for p in CI.glob("*.py")) + sorted(
        p.name for p in CI.iterdir() if p.is_dir() and p.name != "__pycache__")
    assert loose == ["__init__.py", "scaffold.py", "model", "runner", "server"]


@pytest.mark.parametrize("package, forbidden", [
    ("model", ("ml_service.ci.runner", "ml_service.ci.server", "ml_service.cli")),
    ("runner", ("ml_service.ci.server", "ml_service.cli")),
    ("", ("ml_service.cli",)),
])
def test_a_phase_never_imports_a_later_one(package, forbidden):
    assert offenders(package, forbidden) == []


def test_the_check_sees_lazy_imports_and_skips_type_only_ones(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                      "    from ml_service.ci.server.store import Store\n"
                      "def f():\n    from ml_service.ci.server import service\n")
    assert "ml_service.ci.server.service" in imported(module)
    assert "ml_service.ci.server.store.Store" not in imported(module)
