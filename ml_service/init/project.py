"""Create a model project: check everything, render everything, then write it all or nothing.

The order matters: the CSV, the names and every path are checked and every file is rendered in memory
before the first byte is written; writing then happens in one FileTransaction.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ml_service.config import yaml_problem
from ml_service.data.dialect import Dialect, standard_text
from ml_service.init import InitError
from ml_service.init.config_entry import add_model
from ml_service.init.names import ProjectNames, check_free, project_names
from ml_service.init.profile import Profile, profile_frame
from ml_service.init.reader import read_table
from ml_service.init.scaffold import project_files
from ml_service.init.writer import FileTransaction

CONFIG_FILE = "mlops.yml"


@dataclass
class Plan:
    """What init is about to write."""

    root: Path
    source: Path
    names: ProjectNames
    profile: Profile
    files: dict[str, str] = field(default_factory=dict)
    config_text: str = ""
    dialect: Dialect = Dialect()  # how source separates fields; data/ gets a standard CSV file

    @property
    def entry(self) -> dict[str, str]:
        """The project's entry under models: in mlops.yml."""
        return {"project": self.names.project, "name": self.names.model_name, "task": self.profile.task,
                "data": self.names.data, "contract": self.names.contract, "target": self.profile.target,
                "dataset": self.names.dataset}


def read_config(root: Path) -> tuple[str, dict]:
    """mlops.yml's text and mapping; InitError when it is missing or malformed."""
    path = root / CONFIG_FILE
    try:
        text = path.read_text(encoding="utf-8")
        data = yaml.safe_load(text) or {}
    except FileNotFoundError:
        raise InitError(f"{path} not found: run init in the repository's root folder or set MLOPS_ROOT") from None
    except yaml.YAMLError as exc:
        raise InitError(f"{path}: malformed YAML{yaml_problem(exc)}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InitError(f"{path}: cannot be read: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("models") or [], list):
        raise InitError(f"{path}: expected a mapping whose 'models' is a list")
    return text, data


def render_plan(root: Path, source: Path, target: str, task: str | None, names: ProjectNames,
                keep=(), drop=()) -> Plan:
    """Read and profile source, and render the project's files for names (no check of what exists)."""
    frame = read_table(source)
    try:
        profile = profile_frame(frame, target, task, keep, drop)
    except InitError as exc:
        raise InitError(f"{source}: {exc}") from None
    plan = Plan(Path(root), Path(source), names, profile, dialect=frame.attrs["dialect"])
    plan.files = project_files(profile, names, frame, names.data)
    return plan


def plan_project(root: Path, source: Path, target: str, task: str | None = None, project: str = "",
                 model_name: str | None = None, dataset: str | None = None, keep=(), drop=()) -> Plan:
    """Check the inputs and render every file; nothing is written. InitError names the first problem."""
    root, source = Path(root).resolve(), Path(source).expanduser().absolute()
    names = project_names(project, model_name, dataset)
    text, config = read_config(root)
    check_free(root, names, config, source)
    plan = render_plan(root, source, target, task, names, keep, drop)
    plan.config_text = add_model(text, plan.entry, str(root / CONFIG_FILE))
    return plan


def write_plan(plan: Plan) -> list[Path]:
    """Write the plan: project files, data copy, contract, pipeline files, then the mlops.yml entry."""
    from ml_service.ci.scaffold import write_model_pipelines

    root, names = plan.root, plan.names
    with FileTransaction(root) as files:
        for rel, text in plan.files.items():
            files.write(rel, text)
        same = (root / names.data).resolve() == plan.source.resolve()
        if not plan.dialect.standard:  # the pipelines read data/ with pandas.read_csv's defaults
            text = standard_text(plan.source, plan.dialect)
            if same:
                files.replace(names.data, text)
            else:
                files.write(names.data, text)
        elif not same:
            files.copy(plan.source, names.data)
        files.mkdirs(root / ".pipelines")
        files.adopt([root / rel for rel in names.pipelines])
        write_model_pipelines(root, names.project, watched=[names.data, names.contract],
                              data=names.data, contract=names.contract)
        files.replace(CONFIG_FILE, plan.config_text)
        return list(files.created)


def init_project(root: Path, source: Path, target: str, task: str | None = None, project: str = "",
                 model_name: str | None = None, dataset: str | None = None, keep=(), drop=()) -> Plan:
    """Create the project (see plan_project and write_plan); returns the plan that was written."""
    plan = plan_project(root, source, target, task, project, model_name, dataset, keep, drop)
    try:
        write_plan(plan)
    except OSError as exc:
        raise InitError(f"writing the project failed, nothing was kept: {exc}") from None
    return plan
