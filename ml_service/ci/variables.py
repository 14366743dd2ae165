"""Pipeline variables: map and list forms, variable groups from a local secret source, predefined ones."""
from __future__ import annotations

import os
from pathlib import Path

from ml_service.ci import expressions as ex
from ml_service.ci.model import Var
from ml_service.errors import MLOpsError


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
                raise VariableError(f"variable group '{name}' is not defined (mlops.yml: ci.variable_groups)")
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


def variable_groups(config: dict, root: Path, env: dict | None = None) -> dict:
    """Groups from mlops.yml `ci.variable_groups`: plain values, and secrets from the environment or .env."""
    env = os.environ if env is None else env
    dotenv = None
    groups = {}
    for name, spec in (config or {}).items():
        spec = spec or {}
        group = {str(k): _var(v) for k, v in (spec.get("variables") or {}).items()}
        for secret in spec.get("secrets") or []:
            if secret in env:
                value = env[secret]
            else:
                dotenv = read_dotenv(root / ".env") if dotenv is None else dotenv
                if secret not in dotenv:
                    raise VariableError(f"variable group '{name}': secret {secret} is not set in the environment "
                                        f"or in {root / '.env'}")
                value = dotenv[secret]
            group[secret] = Var(value, secret=True, literal=True)
        groups[name] = group
    return groups
