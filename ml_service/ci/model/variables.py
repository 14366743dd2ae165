"""Pipeline variables: map and list forms, variable groups from a local secret source, predefined ones."""
from __future__ import annotations

import os
from pathlib import Path

from ml_service.ci.model import expressions as ex
from ml_service.ci.model.pipeline import Var
from ml_service.errors import MLOpsError
from ml_service.sections import VariableGroup


class VariableError(MLOpsError):
    """A variable or group cannot be resolved."""


def _var(value, secret=False, readonly=False):
    return Var(ex.to_str(value) if not isinstance(value, str) else value, secret, readonly)


def parse_variables(declared, groups: dict | None = None) -> dict:
    """name -> Var for `variables:` in map form or list form (name/value, group)."""
    if not declared:
        return {}
    if isinstance(declared, dict):
        return {str(k): _var(v) for k, v in declared.items()}
    if not isinstance(declared, list):
        raise VariableError("'variables' must be a mapping or a list")
    result = {}
    for item in declared:
        if not isinstance(item, dict):
            raise VariableError(f"unexpected variables entry {item!r}")
        if "group" in item:
            name = str(item["group"])
            if groups is None or name not in groups:
                at = f"{item.where('group')}: " if hasattr(item, "where") else ""
                raise VariableError(f"{at}variable group '{name}' is not defined (mlops.yml: ci.variable_groups): "
                                    "a variable group is Azure DevOps library data; define it there as "
                                    f"{name}: {{variables: {{NAME: value}}, secrets: [NAME]}} (secrets are read "
                                    "from the environment or .env)")
            result.update(groups[name])
        elif "name" in item:
            result[str(item["name"])] = _var(item.get("value", ""), readonly=ex.as_bool(item.get("readonly", False)))
        else:
            raise VariableError(f"unexpected variables entry {item!r} (templates are expanded before this)")
    return result


def read_dotenv(path: Path) -> dict[str, str]:
    """KEY=VALUE lines of a .env file (quotes stripped, comments ignored)."""
    values = {}
    if not path.is_file():
        return values
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, value = line.split("=", 1)
        values[key.strip().removeprefix("export ").strip()] = value.strip().strip("'\"")
    return values


class Groups(dict):
    """Variable groups by name, each resolved when a pipeline first uses it: a secret missing from a
    group that a pipeline does not use never fails that pipeline. `used` lists the resolved ones."""

    def __init__(self, config: dict, root: Path, env):
        super().__init__()
        self.config, self.root, self.env = config or {}, Path(root), env
        self.used: list[str] = []
        self._dotenv: dict | None = None

    def __contains__(self, name) -> bool:
        return name in self.config

    def __bool__(self) -> bool:
        return bool(self.config)

    def __getitem__(self, name):
        if not dict.__contains__(self, name):
            if name not in self.config:
                raise KeyError(name)
            dict.__setitem__(self, name, self._resolve(name))
            self.used.append(name)
        return dict.__getitem__(self, name)

    def _resolve(self, name: str) -> dict:
        spec = self.config[name] or {}
        if isinstance(spec, dict):  # a plain mapping (tests, callers without settings)
            spec = VariableGroup(spec.get("variables") or {}, tuple(spec.get("secrets") or ()))
        group = {str(k): _var(v) for k, v in spec.variables.items()}
        for secret in spec.secrets:
            if secret in self.env:
                value = self.env[secret]
            else:
                if self._dotenv is None:
                    self._dotenv = read_dotenv(self.root / ".env")
                if secret not in self._dotenv:
                    raise VariableError(f"variable group '{name}': secret {secret} is not set in the environment "
                                        f"or in {self.root / '.env'}")
                value = self._dotenv[secret]
            group[secret] = Var(value, secret=True, literal=True)
        return group


def variable_groups(config: dict, root: Path, env: dict | None = None) -> Groups:
    """Groups from mlops.yml `ci.variable_groups`: plain values, and secrets from the environment or .env,
    each group read when a pipeline uses it."""
    return Groups(config, root, os.environ if env is None else env)
