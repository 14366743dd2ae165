"""The floors of ml_service: the CLI (ml_service/cli) sits above the library, which never imports it, and the
packages of ml_service import each other without a circle. Every import counts, also one inside a function."""
from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import ROOT

PACKAGE = ROOT / "ml_service"


def module_name(path: Path) -> str:
    """The dotted name of a module file under ROOT (a package's __init__ is the package)."""
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    """Every module of ml_service by dotted name (templates rendered by `mlops init` are not ml_service code)."""
    return {module_name(p): p for p in PACKAGE.rglob("*.py") if "templates" not in p.relative_to(PACKAGE).parts}


def imported(path: Path, name: str) -> set[str]:
    """The ml_service modules (or names in them) a module imports anywhere in its body, relative imports resolved."""
    found = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            found |= {base} | {f"{base}.{alias.name}" for alias in node.names}
    return {target for target in found if target == "ml_service" or target.startswith("ml_service.")}


def package_of(name: str) -> str:
    """ml_service.<pkg> for a module name (ml_service.config for a top-level module)."""
    return ".".join(name.split(".")[:2])


def package_graph() -> dict[str, set[str]]:
    """Package -> the other packages of ml_service it imports."""
    known = modules()
    graph: dict[str, set[str]] = {}
    for name, path in known.items():
        for target in imported(path, name):
            while target not in known and "." in target:  # `from ml_service.x import name`: the module is x
                target = target.rpartition(".")[0]
            if target in known and package_of(target) != package_of(name) and target != "ml_service":
                graph.setdefault(package_of(name), set()).add(package_of(target))
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one node (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in sorted(graph.get(node, ())):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                other = stack.pop()
                component.append(other)
                if other == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(set(graph) | {n for targets in graph.values() for n in targets}):
        if node not in index:
            visit(node)
    return found


def test_no_module_outside_the_cli_imports_the_cli():
    upward = sorted(f"{name} -> {target}" for name, path in modules().items()
                    if not (name == "ml_service.cli" or name.startswith("ml_service.cli."))
                    for target in imported(path, name)
                    if target == "ml_service.cli" or target.startswith("ml_service.cli."))
    assert upward == []


def test_the_packages_of_ml_service_import_each_other_without_a_circle():
    assert cycles(package_graph()) == []


def test_the_import_scan_sees_imports_inside_functions_and_relative_ones(tmp_path):
    source = tmp_path / "probe.py"
    source.write_text("def f():\n    from ml_service.cli import main\n    from . import config\n")
    assert imported(source, "ml_service.deploy.probe") == {"ml_service.cli", "ml_service.cli.main",
                                                           "ml_service.deploy", "ml_service.deploy.config"}
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
