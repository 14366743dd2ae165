"""Typed settings: mlops.yml, then MLOPS_* environment variables, read once and passed down.

Every path is resolved from one project root (the folder holding mlops.yml), never from the
current directory by accident. Secrets are never read from mlops.yml: only from the
environment.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml

CONFIG_FILE = "mlops.yml"
PACKAGE_ROOT = Path(__file__).resolve().parents[1]


class ConfigError(Exception):
    """The workspace configuration is malformed or inconsistent."""


@dataclass(frozen=True)
class Settings:
    """Everything the platform needs to know about a workspace."""

    root: Path
    state_dir: Path
    tracking_uri: str
    artifact_root: Path
    experiment: str
    model_name: str
    project: str
    pipeline_file: Path
    parameters_file: Path
    build_id: str = ""
    build_uri: str = ""
    user: str = ""
    base_image: str = "mlops-python:3.11-bookworm"
    image_registry: str = ""
    environments: Mapping[str, Any] = field(default_factory=dict)

    @property
    def reports_dir(self) -> Path:
        """Where human-readable reports (data validation, ...) are written."""
        return self.state_dir / "reports"


# Fields that MLOPS_<NAME> may override, with how to read them.
_ENV_FIELDS = {
    "STATE_DIR": "state_dir",
    "TRACKING_URI": "tracking_uri",
    "ARTIFACT_ROOT": "artifact_root",
    "EXPERIMENT": "experiment",
    "MODEL_NAME": "model_name",
    "BUILD_ID": "build_id",
    "BUILD_URI": "build_uri",
    "USER": "user",
    "BASE_IMAGE": "base_image",
    "IMAGE_REGISTRY": "image_registry",
}


def find_root(env: Mapping[str, str] | None = None) -> Path:
    """The project root: $MLOPS_ROOT, else the checkout this package is installed from."""
    env = os.environ if env is None else env
    if env.get("MLOPS_ROOT"):
        return Path(env["MLOPS_ROOT"]).resolve()
    return PACKAGE_ROOT


def _read_yaml(path: Path) -> dict:
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise ConfigError(f"{path}: not found (set MLOPS_ROOT to the folder that holds {CONFIG_FILE})")
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: malformed YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data


def _section(data: dict, name: str, path: Path) -> dict:
    value = data.get(name) or {}
    if not isinstance(value, dict):
        raise ConfigError(f"{path}: '{name}' must be a mapping")
    return value


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Read mlops.yml at the project root and apply MLOPS_* overrides."""
    env = os.environ if env is None else env
    root = find_root(env)
    path = root / CONFIG_FILE
    data = _read_yaml(path)
    workspace = _section(data, "workspace", path)
    model = _section(data, "model", path)
    environments = _section(data, "environments", path)
    deploy = _section(data, "deploy", path)

    values: dict[str, Any] = {
        "state_dir": workspace.get("state_dir", ".mlops"),
        "tracking_uri": workspace.get("tracking_uri", ""),
        "artifact_root": workspace.get("artifact_root", ""),
        "experiment": workspace.get("experiment", "default"),
        "model_name": model.get("name", ""),
        "project": model.get("project", ""),
        "pipeline_file": model.get("pipeline", ""),
        "parameters_file": model.get("parameters", ""),
        "base_image": deploy.get("base_image", Settings.base_image),
        "image_registry": deploy.get("registry", ""),
    }
    for suffix, name in _ENV_FIELDS.items():
        if env.get(f"MLOPS_{suffix}"):
            values[name] = env[f"MLOPS_{suffix}"]
    for required in ("model_name", "project", "pipeline_file", "parameters_file"):
        if not values[required]:
            raise ConfigError(f"{path}: model.{_yaml_key(required)} is required")

    state_dir = _resolve(root, values["state_dir"])
    artifact_root = _resolve(root, values["artifact_root"] or state_dir / "artifacts")
    tracking_uri = values["tracking_uri"] or f"sqlite:///{state_dir / 'mlflow.db'}"
    if tracking_uri.startswith("sqlite:///") and not tracking_uri.startswith("sqlite:////"):
        # A relative sqlite path is relative to the project root, not the current directory.
        tracking_uri = f"sqlite:///{_resolve(root, tracking_uri[len('sqlite:///'):])}"

    return Settings(
        root=root,
        state_dir=state_dir,
        tracking_uri=tracking_uri,
        artifact_root=artifact_root,
        experiment=values["experiment"],
        model_name=values["model_name"],
        project=values["project"],
        pipeline_file=_resolve(root, values["pipeline_file"]),
        parameters_file=_resolve(root, values["parameters_file"]),
        build_id=str(values.get("build_id", "")),
        build_uri=str(values.get("build_uri", "")),
        user=str(values.get("user", "")),
        base_image=str(values["base_image"]),
        image_registry=str(values["image_registry"] or ""),
        environments=environments,
    )


def replace(settings: Settings, **changes: Any) -> Settings:
    """A copy of settings with some fields changed (e.g. a build id from the command line)."""
    return dataclasses.replace(settings, **changes)


def _resolve(root: Path, value: str | Path) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else (root / path).resolve()


def _yaml_key(name: str) -> str:
    return {"model_name": "name", "pipeline_file": "pipeline", "parameters_file": "parameters"}.get(name, name)
