"""The names and paths of a new model project, and the checks that it collides with nothing.

A project NAME is a folder and a Python package; it owns data/DATASET.csv, data/contract/DATASET_suite.json
(DATASET defaults to NAME), the registered model NAME_model and .pipelines/NAME-{build,retrain,release}.yml.
"""
from __future__ import annotations

import importlib.util
import keyword
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from ml_service.init import InitError

PROJECT_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\Z")  # the same rule as mlops.yml's models[].project
DATASET_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*\Z")
MODEL_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*\Z")
PIPELINE_KINDS = ("build", "retrain", "release")
MAX_LENGTH = 40  # the generated code stays within the line length with names up to this long
# The repository's own top-level folders and packages: a project of that name would be the same folder,
# or an import of it would find the project instead of the platform.
PLATFORM_NAMES = frozenset({"ml_service", "tests", "tools", "bench", "docs", "data", "charts", "environment_setup",
                            "conftest", "setup", "mlops"})


@dataclass(frozen=True)
class ProjectNames:
    """Everything a new project is called, and where its files go (paths relative to the repository)."""

    project: str
    model_name: str
    dataset: str

    @property
    def data(self) -> str:
        """The training data's path."""
        return f"data/{self.dataset}.csv"

    @property
    def contract(self) -> str:
        """The data contract's path."""
        return f"data/contract/{self.dataset}_suite.json"

    @property
    def pipelines(self) -> list[str]:
        """The project's CI pipeline files."""
        return [f".pipelines/{self.project}-{kind}.yml" for kind in PIPELINE_KINDS]


def check_project_name(project: str) -> None:
    """InitError unless project is an ASCII Python identifier (no keyword, not too long) that shadows nothing
    importable: a platform folder or package, a standard library module."""
    if not project or not project.isidentifier() or not PROJECT_NAME.match(project):
        raise InitError(f"project name {project!r} is not a valid Python package name: use ASCII letters, digits "
                        "and _, not starting with a digit (e.g. churn_model)")
    if keyword.iskeyword(project):
        raise InitError(f"project name {project!r} is a Python keyword; choose another")
    if project.startswith("__") and project.endswith("__"):
        raise InitError(f"project name {project!r} is a Python special name (__x__); choose another")
    if len(project) > MAX_LENGTH:
        raise InitError(f"project name {project!r} is {len(project)} characters long; use at most {MAX_LENGTH}")
    if project in PLATFORM_NAMES:
        raise InitError(f"project name {project!r} is a folder or package of the platform itself: the project's "
                        f"package would shadow it; choose another (e.g. {project}_model)")
    if project in sys.stdlib_module_names:
        raise InitError(f"project name {project!r} is the name of a Python standard library module: importing the "
                        "project would shadow it; choose another")


def project_names(project: str, model_name: str | None = None, dataset: str | None = None) -> ProjectNames:
    """Checked names: project a valid, unshadowing package name; model name and data set name plain."""
    check_project_name(project)
    model_name = model_name or f"{project}_model"
    dataset = dataset or project
    if not MODEL_NAME.match(model_name):
        raise InitError(f"model name {model_name!r} may hold letters, digits, '_', '.' and '-' only")
    if not DATASET_NAME.match(dataset):
        raise InitError(f"data set name {dataset!r} may hold letters, digits, '_', '.' and '-' only")
    return ProjectNames(project, model_name, dataset)


def check_free(root: Path, names: ProjectNames, config: dict, source: Path) -> None:
    """InitError naming the first thing that already exists: folder, mlops.yml entry, data, contract, pipelines."""
    folder = root / names.project
    if folder.exists() or folder.with_suffix(".py").exists():
        raise InitError(f"{folder} already exists: choose another project name")
    for i, entry in enumerate(config.get("models") or []):
        if not isinstance(entry, dict):
            continue
        project, model = str(entry.get("project") or ""), str(entry.get("name") or "")
        if project.lower() == names.project.lower() or model.lower() == names.model_name.lower():
            raise InitError(f"{root / 'mlops.yml'}: models[{i}] already declares project {entry.get('project')!r} "
                            f"(registered model {entry.get('name')!r}); choose another name (names that differ "
                            "only in case are the same folder on some systems and the same image name)")
    spec = importlib.util.find_spec(names.project)
    if spec is not None and spec.origin not in (None, "namespace"):  # a folder without __init__.py does not count
        raise InitError(f"project name {names.project!r} would shadow the installed module at {spec.origin}; "
                        "choose another")
    data = root / names.data
    if data.exists() and data.resolve() != Path(source).resolve():
        raise InitError(f"{data} already exists: choose another project name, or --dataset")
    for rel in (names.contract, *names.pipelines):
        if (root / rel).exists():
            raise InitError(f"{root / rel} already exists: choose another project name")
