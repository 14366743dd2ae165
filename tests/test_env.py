"""MLOPS_* variables, and the variables of other tools the platform reads (ml_service/env.py): declared once, read
nowhere else, bad values named, the doc generated.

The guard reads the source of every module under ml_service with ast: a read of an MLOPS_* name
(`x.get("MLOPS_…")`, `x["MLOPS_…"]`, `os.getenv("MLOPS_…")`, `"MLOPS_…" in x`, f"MLOPS_{…}", or a
module constant holding such a name used in one of these) anywhere but env.py fails it. Writing a
child process's environment (`{"MLOPS_ROOT": …}`, `env["MLOPS_MODEL"] = …`, `.pop`) is allowed.
"""
import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

from ml_service import env as envvars
from ml_service.config import PACKAGE_ROOT, ConfigError, load_settings
from ml_service.env import VARIABLES, EnvError, EnvVar
from ml_service.serving.config import ServingConfigError, load_serving_settings

FOREIGN = sorted(name for name, v in VARIABLES.items() if v.group == "other tools")  # other tools' variables we read
NAME = re.compile(rf"^(MLOPS_[A-Z0-9_]*|{'|'.join(map(re.escape, FOREIGN))})$")
TESTS_ONLY = {"MLOPS_TEST_GROUP", "MLOPS_ADVERSARIAL_LONG", "MLOPS_UPDATE_SCREENSHOTS"}  # env.py's docstring
PENDING: dict[str, set[str]] = {}  # path prefix -> variables still read there directly (none left)


def _is_name(node: ast.AST, constants: dict[str, str]) -> str | None:
    """The MLOPS_* name node stands for (a literal, an f-string that starts with MLOPS_, a module constant)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str) and NAME.match(node.value):
        return node.value
    if isinstance(node, ast.JoinedStr) and node.values and isinstance(node.values[0], ast.Constant) \
            and str(node.values[0].value).startswith("MLOPS_"):
        return str(node.values[0].value) + "{...}"
    if isinstance(node, ast.Name) and node.id in constants:
        return constants[node.id]
    return None


def stray_reads(source: str) -> list[tuple[int, str]]:
    """(line, variable) of every read of an MLOPS_* variable in source."""
    tree = ast.parse(source)
    constants = {target.id: node.value.value for node in tree.body if isinstance(node, ast.Assign)
                 for target in node.targets if isinstance(target, ast.Name)
                 and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)
                 and NAME.match(node.value.value)}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and node.args:
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if called in ("get", "getenv", "setdefault"):
                name = _is_name(node.args[0], constants)
                if name:
                    found.append((node.lineno, name))
        elif isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Load):
            name = _is_name(node.slice, constants)
            if name:
                found.append((node.lineno, name))
        elif isinstance(node, ast.Compare) and any(isinstance(op, (ast.In, ast.NotIn)) for op in node.ops):
            name = _is_name(node.left, constants)
            if name:
                found.append((node.lineno, name))
    return found


def test_no_module_but_env_py_reads_an_mlops_variable():
    strays = []
    for path in sorted((PACKAGE_ROOT / "ml_service").rglob("*.py")):
        rel = path.relative_to(PACKAGE_ROOT).as_posix()
        if rel == "ml_service/env.py":
            continue
        allowed = set().union(*(names for prefix, names in PENDING.items() if rel.startswith(prefix)))
        strays += [f"{rel}:{line}: {name}" for line, name in stray_reads(path.read_text()) if name not in allowed]
    assert strays == []


@pytest.mark.parametrize("source", [
    'import os\nos.environ.get("MLOPS_ROOT")', 'import os\nos.getenv("MLOPS_ROOT", "")',
    'env = {}\nenv["MLOPS_ROOT"]', 'env = {}\nenv.get(f"MLOPS_{name}")', 'X = "MLOPS_ROOT"\nimport os\nos.environ[X]',
    'import os\n"MLOPS_ROOT" in os.environ',
])
def test_the_guard_finds_each_kind_of_read(source):
    assert [name for _, name in stray_reads(source)], source


def test_the_guard_lets_a_child_environment_be_written():
    source = ('import os\nenv = {**os.environ, "MLOPS_ROOT": "/r"}\nenv["MLOPS_MODEL"] = "p"\n'
              'env.pop("MLOPS_USER", None)')
    assert stray_reads(source) == []


def test_every_mlops_name_in_the_repository_is_declared():
    listed = subprocess.run(["git", "grep", "-h", "-o", "-E", r"MLOPS_[A-Z0-9_]+", "--", "ml_service", "tests",
                             "docs", "charts", "environment_setup", ".pipelines", "mlops.yml", "README.md",
                             ":!tests/test_env.py"],
                            cwd=PACKAGE_ROOT, capture_output=True, text=True, check=True).stdout.split()
    # names spelled like a variable that are none: MLOPS_YML (an mlops.yml text in tests), MLOPS_PYTHON_SCRIPT_END
    # (the end marker of an inline script, ci/tasks/python_script.py)
    unknown = set(listed) - set(VARIABLES) - TESTS_ONLY - {"MLOPS_YML", "MLOPS_PYTHON_SCRIPT_END"}
    assert unknown == set()


def test_each_declared_variable_has_a_known_type_and_a_meaning():
    for name, variable in VARIABLES.items():
        assert name == variable.name and NAME.match(name)
        assert variable.type in ("str", "int", "seconds", "switch") and variable.doc.strip()
        assert variable.group in envvars.GROUPS
        assert variable.get({}) == variable.default


def test_a_number_variable_refuses_text_naming_the_variable():
    with pytest.raises(EnvError, match="^MLOPS_MAX_ROWS must be a whole number, got 'many'$"):
        envvars.MLOPS_MAX_ROWS.get({"MLOPS_MAX_ROWS": "many"})
    with pytest.raises(EnvError, match="^MLOPS_DRAIN_SECONDS must be a number of seconds, got '2s'$"):
        envvars.MLOPS_DRAIN_SECONDS.get({"MLOPS_DRAIN_SECONDS": "2s"})
    with pytest.raises(ServingConfigError, match="MLOPS_WORKERS"):
        load_serving_settings({"MLOPS_WORKERS": "lots"})


def test_an_empty_value_counts_as_unset():
    variable = EnvVar("MLOPS_X", "int", 7, "x")
    assert (variable.get({"MLOPS_X": ""}), variable.is_set({"MLOPS_X": ""})) == (7, False)
    assert (variable.get({"MLOPS_X": "8"}), variable.is_set({"MLOPS_X": "8"})) == (8, True)


def test_the_workspace_overrides_are_read_through_env_py(tmp_path):
    (tmp_path / "mlops.yml").write_text("models:\n  - {project: p, name: m}\n  - {project: q, name: qm}\n")
    settings = load_settings({"MLOPS_ROOT": str(tmp_path), "MLOPS_MODEL": "q", "MLOPS_MODEL_NAME": "renamed"})
    assert (settings.root, settings.project, settings.model_name) == (tmp_path.resolve(), "q", "renamed")
    with pytest.raises(ConfigError):
        load_settings({"MLOPS_ROOT": str(tmp_path), "MLOPS_MODEL": "nope"})


def test_docs_environment_md_is_what_env_py_renders():
    assert (PACKAGE_ROOT / "docs" / "environment.md").read_text() == envvars.render_markdown()
    rendered = subprocess.run([sys.executable, "-m", "ml_service.env"], cwd=PACKAGE_ROOT, capture_output=True,
                              text=True, check=True).stdout
    assert rendered == envvars.render_markdown()
    for name in VARIABLES:
        assert f"`{name}`" in rendered


def test_env_py_imports_only_the_standard_library():
    """env.py and the error base it raises from (both ship in the scoring image) need nothing installed."""
    tree = ast.parse(Path(envvars.__file__).read_text() + "\n" + (PACKAGE_ROOT / "ml_service/errors.py").read_text())
    modules = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
               for alias in node.names}
    modules |= {node.module.split(".")[0] for node in ast.walk(tree)
                if isinstance(node, ast.ImportFrom) and node.module}
    assert modules <= set(sys.stdlib_module_names) | {"__future__", "ml_service"}


def test_the_scoring_image_ships_every_platform_module_serving_imports():
    """The image holds only SERVICE_PATHS of ml_service (deploy/image.py): env.py must be among them."""
    from ml_service.deploy.image import SERVICE_PATHS

    imported = set()
    for path in [*(PACKAGE_ROOT / "ml_service" / "serving").rglob("*.py"), PACKAGE_ROOT / "ml_service/env.py"]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("ml_service"):
                imported |= {f"{node.module}.{alias.name}" if node.module == "ml_service" else node.module
                             for alias in node.names}
            elif isinstance(node, ast.Import):
                imported |= {alias.name for alias in node.names if alias.name.startswith("ml_service")}
    assert "ml_service.env" in imported
    for module in imported:
        rel = module.replace(".", "/")
        assert any(rel == p.removesuffix(".py") or rel.startswith(p + "/") or rel == p for p in SERVICE_PATHS), module
