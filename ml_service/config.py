"""Typed settings: mlops.yml, then MLOPS_* environment variables, read once and passed down.

Every path is resolved from one project root (the folder holding mlops.yml), never from the
current directory by accident. Secrets are never read from mlops.yml: only from the
environment. `models:` lists the model projects of the repository; one of them is selected
(the first, or MLOPS_MODEL / --project) and the platform never names one itself.

The MLOPS_* variables are declared in env.py; the other sections (environments, ci, monitor,
studio) are parsed here too, by sections.py; mlops.schema.json says the same for editors.
"""
from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml

from ml_service import env as envvars
from ml_service.sections import (CI, ConfigError, Environment, Monitor, Studio, Where, parse_ci,
                                 parse_environments, parse_monitor, parse_studio)

CONFIG_FILE = "mlops.yml"
LOCAL_OVERRIDE = "local.yml"  # in the state dir (git-ignored): written by `mlops workspace up|use`
PACKAGE_ROOT = Path(__file__).resolve().parents[1]
TASKS = ("regression", "classification")
PROJECT_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\Z")


SECTIONS = ("workspace", "models", "deploy", "environments", "ci", "monitor", "studio")
MODEL_KEYS = ("project", "name", "task", "data", "contract", "target", "dataset", "experiment", "pipeline",
              "parameters", "score_module", "smoke_payload", "monitor")


@dataclass(frozen=True)
class ModelProject:
    """One model project of the repository, as declared under `models:` in mlops.yml."""

    project: str
    name: str
    folder: Path
    task: str = "regression"
    data: Path | None = None
    contract: Path | None = None
    target: str = ""
    dataset: str = ""
    experiment: str = ""
    pipeline_file: Path | None = None
    parameters_file: Path | None = None
    score_module: str = ""
    smoke_payload: Path | None = None
    monitor: Monitor = Monitor()  # the workspace's `monitor:`, then this project's own

    def builtin_params(self, root: Path) -> dict[str, str]:
        """The pipeline parameters every pipeline of this project has ($data, $contract, $target, $dataset)."""
        def rel(path: Path | None) -> str:
            if path is None:
                return ""
            try:
                return path.relative_to(root).as_posix()
            except ValueError:
                return str(path)
        return {"data": rel(self.data), "contract": rel(self.contract), "target": self.target,
                "dataset": self.dataset}


@dataclass(frozen=True)
class Settings:
    """Everything the platform needs to know about a workspace."""

    root: Path
    state_dir: Path
    tracking_uri: str
    artifact_root: Path
    models: tuple[ModelProject, ...] = ()
    selected: str = ""
    build_id: str = ""
    build_uri: str = ""
    user: str = ""
    base_image: str = "mlops-python:3.11-bookworm"
    image_registry: str = ""
    environments: Mapping[str, Environment] = field(default_factory=dict)
    ci: CI = CI()
    monitor: Monitor = Monitor()
    studio: Studio = Studio()
    tracking_username: str = ""
    tracking_password: str = field(default="", repr=False)  # a secret: from a 0600 file or the environment

    @property
    def reports_dir(self) -> Path:
        """Where human-readable reports (data validation, ...) are written."""
        return self.state_dir / "reports"

    @property
    def model(self) -> ModelProject:
        """The selected model project (the first in mlops.yml unless MLOPS_MODEL / --project says otherwise)."""
        if not self.models:
            raise ConfigError(f"{self.root / CONFIG_FILE}: no model projects under 'models:' "
                              "(add one with `mlops init NAME --data FILE.csv --target COLUMN`)")
        if not self.selected:
            return self.models[0]
        for model in self.models:
            if self.selected in (model.project, model.name):
                return model
        known = ", ".join(m.project for m in self.models)
        raise ConfigError(f"no model project '{self.selected}' in {self.root / CONFIG_FILE} (known: {known})")

    # The selected model's facts, under the names the platform has always used.
    @property
    def model_name(self) -> str:
        """Registered model name of the selected project."""
        return self.model.name

    @property
    def project(self) -> str:
        """Folder and package of the selected project."""
        return self.model.project

    @property
    def experiment(self) -> str:
        """MLflow experiment of the selected project."""
        return self.model.experiment

    @property
    def pipeline_file(self) -> Path:
        """The selected project's retraining pipeline."""
        return self.model.pipeline_file

    @property
    def parameters_file(self) -> Path:
        """The selected project's parameters.yml."""
        return self.model.parameters_file

    def select(self, model: str) -> "Settings":
        """A copy with another model project selected (by project or registered name); checked."""
        chosen = dataclasses.replace(self, selected=model)
        chosen.model  # noqa: B018 - raises ConfigError for an unknown model
        return chosen

    def for_registered(self, name: str) -> "Settings":
        """A copy selecting the project whose registered model is name (unchanged when none is)."""
        for model in self.models:
            if model.name == name:
                return dataclasses.replace(self, selected=model.project)
        return self


# Fields that an MLOPS_* variable (ml_service/env.py) may override.
_ENV_FIELDS = {
    envvars.MLOPS_STATE_DIR: "state_dir",
    envvars.MLOPS_TRACKING_URI: "tracking_uri",
    envvars.MLOPS_ARTIFACT_ROOT: "artifact_root",
    envvars.MLOPS_BUILD_ID: "build_id",
    envvars.MLOPS_BUILD_URI: "build_uri",
    envvars.MLOPS_USER: "user",
    envvars.MLOPS_BASE_IMAGE: "base_image",
    envvars.MLOPS_IMAGE_REGISTRY: "image_registry",
    envvars.MLOPS_MODEL: "selected",
}


def find_root(env: Mapping[str, str] | None = None) -> Path:
    """The project root: $MLOPS_ROOT, else the checkout this package is installed from."""
    root = envvars.MLOPS_ROOT.get(env)
    return Path(root).resolve() if root else PACKAGE_ROOT


def read_config(path: Path) -> dict:
    """mlops.yml as a mapping, with a clear error naming the file."""
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise ConfigError(f"{path}: not found (set MLOPS_ROOT to the folder that holds {CONFIG_FILE})")
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: malformed YAML{yaml_problem(exc)}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data


def yaml_problem(exc: yaml.YAMLError) -> str:
    """A YAML error on one line: ' at line L, column C: what' (PyYAML's own message spans several lines)."""
    mark = getattr(exc, "problem_mark", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    problem = getattr(exc, "problem", None) or " ".join(str(exc).split())
    return f"{where}: {problem}"


def _section(data: dict, name: str, path: Path) -> dict:
    value = data.get(name)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"{path}: '{name}' must be a mapping")
    return value


def _strings(section: dict, name: str, path: Path, defaults: Mapping[str, str]) -> dict[str, str]:
    """The keys of a section of plain strings, checked; absent or null: the default."""
    return {key: Where(path, f"{name}.{key}").string(section.get(key), default) for key, default in defaults.items()}


def _model(entry: Any, index: int, root: Path, path: Path, env: Mapping[str, str], selected: bool,
           monitor: Monitor) -> ModelProject:
    where = f"{path}: models[{index}]"
    if not isinstance(entry, dict):
        raise ConfigError(f"{where}: expected a mapping with at least 'project' and 'name'")
    for key in ("project", "name"):
        if not entry.get(key) or not isinstance(entry[key], str):
            raise ConfigError(f"{where}.{key} is required (a string)")
    at = Where(path, f"models[{index}]")
    at.mapping(entry, MODEL_KEYS)
    for key in MODEL_KEYS[2:-1]:
        if key not in ("target", "dataset", "experiment"):
            (at / key).string(entry.get(key))
        elif isinstance(entry.get(key), (dict, list)):  # a YAML number or boolean there is taken as its text
            raise (at / key).fail("expected a string")
    project = entry["project"]
    if not PROJECT_NAME.match(project):
        raise ConfigError(f"{where}.project: {project!r} must be a Python package name (ASCII letters, digits, _)")
    task = str(entry.get("task") or "regression")
    if task not in TASKS:
        raise ConfigError(f"{where}.task: {task!r} is not one of {', '.join(TASKS)}")
    folder = root / project

    def path_of(key: str, default: str | None) -> Path | None:
        value = entry.get(key, default)
        return _resolve(root, value) if value else None

    data = path_of("data", None)
    name = entry["name"]
    experiment = str(entry.get("experiment") or project)
    if selected:  # MLOPS_MODEL_NAME / MLOPS_EXPERIMENT rename the selected model (tests, forks)
        name = envvars.MLOPS_MODEL_NAME.get(env) or name
        experiment = envvars.MLOPS_EXPERIMENT.get(env) or experiment
    score_module = entry.get("score_module")
    if score_module is None:
        score_module = f"{project}.scoring.score" if (folder / "scoring" / "score.py").is_file() else ""
    return ModelProject(
        project=project, name=name, folder=folder, task=task, data=data,
        contract=path_of("contract", None), target=str(entry.get("target") or ""),
        dataset=str(entry.get("dataset") or (data.stem if data else project)),
        experiment=experiment,
        pipeline_file=path_of("pipeline", f"{project}/pipeline.yml"),
        parameters_file=path_of("parameters", f"{project}/parameters.yml"),
        score_module=str(score_module), smoke_payload=path_of("smoke_payload", f"{project}/scoring/smoke.json"),
        monitor=parse_monitor(entry.get("monitor"), at / "monitor", monitor),
    )


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Read mlops.yml at the project root and apply MLOPS_* overrides."""
    env = os.environ if env is None else env
    root = find_root(env)
    path = root / CONFIG_FILE
    data = read_config(path)
    if "model" in data:
        raise ConfigError(f"{path}: 'model:' is now 'models:', a list of model projects "
                          "(see docs/model-projects.md)")
    Where(path).mapping(data, SECTIONS)
    # other keys of workspace and deploy are ignored, as they always were (a secret put there is never read)
    workspace = _strings(_section(data, "workspace", path), "workspace", path,
                         {"state_dir": ".mlops", "tracking_uri": "", "artifact_root": ""})
    deploy = _strings(_section(data, "deploy", path), "deploy", path,
                      {"base_image": Settings.base_image, "registry": ""})
    environments = parse_environments(_section(data, "environments", path), Where(path, "environments"))
    ci = parse_ci(_section(data, "ci", path), Where(path, "ci"))
    monitor = parse_monitor(_section(data, "monitor", path), Where(path, "monitor"))
    studio = parse_studio(_section(data, "studio", path), Where(path, "studio"))

    values: dict[str, Any] = {
        "state_dir": workspace["state_dir"] or ".mlops",
        "tracking_uri": workspace["tracking_uri"],
        "artifact_root": workspace["artifact_root"],
        "base_image": deploy["base_image"],
        "image_registry": deploy["registry"],
        "selected": "",
    }
    for variable, name in _ENV_FIELDS.items():
        if variable.is_set(env):
            values[name] = variable.get(env)

    raw_models = data.get("models")
    raw_models = [] if raw_models is None else raw_models
    if not isinstance(raw_models, list):
        raise ConfigError(f"{path}: 'models' must be a list of model projects")
    projects = [m.get("project") if isinstance(m, dict) else None for m in raw_models]
    chosen = values["selected"] or (projects[0] if projects else "")
    models = tuple(_model(entry, i, root, path, env,
                          selected=chosen in (projects[i], entry.get("name") if isinstance(entry, dict) else None),
                          monitor=monitor)
                   for i, entry in enumerate(raw_models))
    for key in ("project", "name"):
        seen = [getattr(m, key) for m in models]
        duplicates = sorted({v for v in seen if seen.count(v) > 1})
        if duplicates:
            raise ConfigError(f"{path}: models: {key} {', '.join(duplicates)} appears more than once")

    state_dir = _resolve(root, values["state_dir"])
    local = read_config(state_dir / LOCAL_OVERRIDE) if (state_dir / LOCAL_OVERRIDE).is_file() else {}
    if local.get("tracking_uri") and not envvars.MLOPS_TRACKING_URI.is_set(env):  # `mlops workspace up|use` wrote it
        values["tracking_uri"] = str(local["tracking_uri"])
    artifact_root = _resolve(root, values["artifact_root"] or state_dir / "artifacts")
    tracking_uri = values["tracking_uri"] or f"sqlite:///{state_dir / 'mlflow.db'}"
    if tracking_uri.startswith("sqlite:///") and not tracking_uri.startswith("sqlite:////"):
        # A relative sqlite path is relative to the project root, not the current directory.
        tracking_uri = f"sqlite:///{_resolve(root, tracking_uri[len('sqlite:///'):])}"

    settings = Settings(
        root=root,
        state_dir=state_dir,
        tracking_uri=tracking_uri,
        artifact_root=artifact_root,
        models=models,
        selected=str(values["selected"] or ""),
        build_id=str(values.get("build_id", "")),
        build_uri=str(values.get("build_uri", "")),
        user=str(values.get("user", "")),
        base_image=str(values["base_image"]),
        image_registry=str(values["image_registry"] or ""),
        environments=environments,
        ci=ci,
        monitor=monitor,
        studio=studio,
        **_credentials(local, state_dir / LOCAL_OVERRIDE, tracking_uri, env),
    )
    if settings.selected:
        settings.model  # noqa: B018 - an unknown MLOPS_MODEL is an error now, not later
    return settings


def _credentials(local: dict, path: Path, tracking_uri: str, env: Mapping[str, str]) -> dict[str, str]:
    """The MLflow server user of this checkout: the local override's user and password file when it
    names this tracking URI, else MLflow's own MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD. In a pipeline
    step (MLOPS_RUN_USER set by the runner) always the latter: the run's user, never the checkout's password file."""
    if envvars.MLOPS_RUN_USER.is_set(env):
        return {"tracking_username": envvars.MLFLOW_TRACKING_USERNAME.get(env),
                "tracking_password": envvars.MLFLOW_TRACKING_PASSWORD.get(env)}
    if local.get("username") and str(local.get("tracking_uri") or "") == tracking_uri:
        secret = Path(str(local.get("password_file") or ""))
        if not secret.is_file():
            raise ConfigError(f"{path}: password_file {str(secret)!r} of user {local['username']!r} does not exist")
        if secret.stat().st_mode & 0o077:
            raise ConfigError(f"{path}: password_file {secret} is readable by others; chmod 600 it")
        return {"tracking_username": str(local["username"]), "tracking_password": secret.read_text().strip()}
    return {"tracking_username": envvars.MLFLOW_TRACKING_USERNAME.get(env),
            "tracking_password": envvars.MLFLOW_TRACKING_PASSWORD.get(env)}


def replace(settings: Settings, **changes: Any) -> Settings:
    """A copy of settings with some fields changed (e.g. a build id from the command line)."""
    return dataclasses.replace(settings, **changes)


def _resolve(root: Path, value: str | Path) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else (root / path).resolve()
