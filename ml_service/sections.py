"""The typed sections of mlops.yml besides the workspace and its models: environments, ci, monitor, studio.

Each is parsed once by `load_settings` (config.py) into a frozen dataclass; an error names the file
and the key (`mlops.yml: environments.production.approval.approvers[1]: expected a string`).
ml_service/mlops.schema.json says the same for editors and `mlops doctor`; a test keeps the two
in agreement.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping

from ml_service.errors import UsageError

SECRET_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\Z")


class ConfigError(UsageError):
    """The workspace configuration is malformed or inconsistent."""


class Where:
    """A place in a file: raises ConfigError naming the file and the key path."""

    def __init__(self, path: Path, key: str = ""):
        self.path, self.key = path, key

    def __truediv__(self, key: str | int) -> "Where":
        if isinstance(key, int):
            return Where(self.path, f"{self.key}[{key}]")
        return Where(self.path, f"{self.key}.{key}" if self.key else key)

    def fail(self, message: str) -> ConfigError:
        """The error to raise: '<file>: <key>: message'."""
        return ConfigError(f"{self.path}: {self.key}: {message}" if self.key else f"{self.path}: {message}")

    def mapping(self, value: Any, known: tuple[str, ...] | None = None) -> dict:
        """value as a mapping (None: empty); with known, unknown keys are an error."""
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise self.fail(f"expected a mapping, got {_kind(value)}")
        unknown = sorted(str(k) for k in value if k not in known) if known is not None else []
        if unknown:
            raise self.fail(f"unknown key(s) {', '.join(unknown)} (known: {', '.join(known)})")
        return value

    def string(self, value: Any, default: str = "") -> str:
        """value as a string (None: default)."""
        if value is None:
            return default
        if not isinstance(value, str):
            raise self.fail(f"expected a string, got {_kind(value)}")
        return value

    def boolean(self, value: Any, default: bool) -> bool:
        """true/false (or the strings "true"/"false" in any case)."""
        if value is None:
            return default
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise self.fail(f"expected true or false, got {value!r}")

    def number(self, value: Any, default: float, whole: bool = False) -> Any:
        """A number (whole: an integer); booleans are not numbers."""
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int if whole else (int, float)):
            raise self.fail(f"expected {'a whole number' if whole else 'a number'}, got {_kind(value)}")
        return value

    def strings(self, value: Any) -> tuple[str, ...]:
        """A list of strings (None: empty)."""
        if value is None:
            return ()
        if not isinstance(value, list):
            raise self.fail(f"expected a list, got {_kind(value)}")
        for index, item in enumerate(value):
            if not isinstance(item, str):
                raise (self / index).fail(f"expected a string, got {_kind(item)}")
        return tuple(value)


def _kind(value: Any) -> str:
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean", int: "a number",
            float: "a number", type(None): "nothing"}.get(type(value), type(value).__name__)


class FrozenDict(dict):
    """A dict that refuses changes; it pickles (settings go to worker processes), unlike MappingProxyType."""

    def _refuse(self, *args: Any, **kwargs: Any):
        raise TypeError("settings are read-only")

    __setitem__ = __delitem__ = __ior__ = clear = pop = popitem = setdefault = update = _refuse

    def __reduce__(self):
        return (FrozenDict, (dict(self),))


def frozen(value: Any) -> Any:
    """A read-only copy of parsed YAML (mappings become FrozenDicts, lists tuples)."""
    if isinstance(value, dict):
        return FrozenDict({k: frozen(v) for k, v in value.items()})
    if isinstance(value, list):
        return tuple(frozen(v) for v in value)
    return value


def thawed(value: Any) -> Any:
    """frozen's inverse: plain dicts and lists (for YAML writers and merges)."""
    if isinstance(value, Mapping):
        return {k: thawed(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return [thawed(v) for v in value]
    return value


# --- environments -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Approval:
    """An environment's approval check: who may approve, whether the requester may, how long it waits."""

    approvers: tuple[str, ...] = ()
    allow_self_approval: bool = True
    timeout_minutes: float = 1440


@dataclass(frozen=True)
class GitOps:
    """Where `mlops deploy prod` commits the desired state without a cluster."""

    repo: str = ""
    branch: str = ""
    values_file: str = "production/{model}/values-prod.yaml"


@dataclass(frozen=True)
class Environment:
    """One deployment environment (Azure DevOps "environments"): its check, helm release, GitOps target."""

    name: str
    approval: Approval | None = None
    release: str = "scoring-{model}"
    gitops: GitOps = GitOps()
    values: Mapping[str, Any] = field(default_factory=FrozenDict)


def _approval(value: Any, where: Where) -> Approval | None:
    if not value:  # absent or empty: no check (as a job on it has always run without one)
        if value not in (None, {}):
            raise where.fail(f"expected a mapping, got {_kind(value)}")
        return None
    raw = where.mapping(value, tuple(f.name for f in fields(Approval)))
    return Approval(approvers=(where / "approvers").strings(raw.get("approvers")),
                    allow_self_approval=(where / "allow_self_approval").boolean(raw.get("allow_self_approval"), True),
                    timeout_minutes=(where / "timeout_minutes").number(raw.get("timeout_minutes"), 1440))


def _gitops(value: Any, where: Where) -> GitOps:
    raw = where.mapping(value, tuple(f.name for f in fields(GitOps)))
    return GitOps(**{key: (where / key).string(raw.get(key)) or default
                     for key, default in (("repo", ""), ("branch", ""), ("values_file", GitOps.values_file))})


def parse_environments(value: Any, where: Where) -> Mapping[str, Environment]:
    """environments: name -> Environment."""
    found = {}
    for name, entry in where.mapping(value).items():
        at = where / str(name)
        raw = at.mapping(entry, ("approval", "release", "gitops", "values"))
        found[str(name)] = Environment(
            name=str(name), approval=_approval(raw.get("approval"), at / "approval"),
            release=(at / "release").string(raw.get("release")) or Environment.release,
            gitops=_gitops(raw.get("gitops"), at / "gitops"),
            values=frozen((at / "values").mapping(raw.get("values"))))
    return FrozenDict(found)


def environments_from(raw: Any) -> Mapping[str, Environment]:
    """An `environments:` mapping as load_settings parses it (for settings built in code)."""
    return parse_environments(raw, Where(Path("mlops.yml"), "environments"))


# --- ci ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class VariableGroup:
    """A variable group of the local CI engine: plain values, and secrets read by name from the environment."""

    variables: Mapping[str, Any] = field(default_factory=FrozenDict)
    secrets: tuple[str, ...] = ()


@dataclass(frozen=True)
class CI:
    """The `ci:` section: the variable groups pipelines may use; repository resources (alias or project/repo ->
    a local path or git URL); Azure definition names of the pipeline files (name -> file stem); a step log's cap;
    Docker registry service connections (name -> registry address)."""

    variable_groups: Mapping[str, VariableGroup] = field(default_factory=FrozenDict)
    repositories: Mapping[str, str] = field(default_factory=FrozenDict)
    pipelines: Mapping[str, str] = field(default_factory=FrozenDict)
    log_max_mb: float = 64.0
    registries: Mapping[str, str] = field(default_factory=FrozenDict)


def parse_ci(value: Any, where: Where) -> CI:
    """ci: variable_groups: name -> {variables: {NAME: scalar}, secrets: [NAME]}."""
    raw = where.mapping(value, ("variable_groups", "repositories", "pipelines", "log_max_mb", "registries"))
    groups = {}
    at = where / "variable_groups"
    for name, entry in at.mapping(raw.get("variable_groups")).items():
        group = at / str(name)
        spec = group.mapping(entry, ("variables", "secrets"))
        variables = (group / "variables").mapping(spec.get("variables"))
        for key, item in variables.items():
            if isinstance(item, (dict, list)):
                raise (group / "variables" / str(key)).fail(f"expected a plain value, got {_kind(item)}")
        secrets = (group / "secrets").strings(spec.get("secrets"))
        for index, secret in enumerate(secrets):
            if not SECRET_NAME.match(secret):
                raise (group / "secrets" / index).fail(f"{secret!r} is not an environment variable name")
        groups[str(name)] = VariableGroup(FrozenDict({str(k): v for k, v in variables.items()}), secrets)
    names = {}
    for key in ("repositories", "pipelines", "registries"):
        entries = (where / key).mapping(raw.get(key))
        for name, target in entries.items():
            if not isinstance(target, str) or not target.strip():
                raise (where / key / str(name)).fail(f"expected a path, URL, file stem or registry address, "
                                                     f"got {_kind(target)}")
            if key == "registries" and ("://" in target or any(c.isspace() for c in target.strip())):
                raise (where / key / str(name)).fail(f"expected a registry address such as 127.0.0.1:5000 or "
                                                     f"registry.example.com/team, got {target!r}")
        names[key] = FrozenDict({str(k): str(v) for k, v in entries.items()})
    log_max_mb = (where / "log_max_mb").number(raw.get("log_max_mb"), 64.0)
    if log_max_mb <= 0:
        raise (where / "log_max_mb").fail("expected a number of megabytes above 0")
    return CI(FrozenDict(groups), names["repositories"], names["pipelines"], float(log_max_mb), names["registries"])


# --- monitor ----------------------------------------------------------------------------------------

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def window_seconds(text: str) -> float | None:
    """'90m', '24h', '7d' as seconds; 'all' as None."""
    text = str(text).strip().lower()
    if text == "all":
        return None
    match = re.fullmatch(r"([0-9]+(?:\.[0-9]+)?)\s*([smhd])", text)
    if not match:
        raise ConfigError(f"window {text!r}: expected a number and a unit (90m, 24h, 7d) or 'all'")
    return float(match.group(1)) * UNITS[match.group(2)]


@dataclass(frozen=True)
class Monitor:
    """Drift settings of one model project (the workspace's `monitor:`, then the project's own)."""

    collect_dir: str = "collected/{environment}/{model}"
    window: str = "24h"
    min_rows: int = 50
    psi: float = 0.2
    p_value: float = 0.01
    retrain: bool = False

    def collected(self, settings, environment: str, model: str) -> Path:
        """The folder the scoring service of environment collects model's inputs into."""
        path = Path(self.collect_dir.format(environment=environment, model=model))
        return path if path.is_absolute() else settings.state_dir / path


MONITOR_KEYS = tuple(f.name for f in fields(Monitor))


def parse_monitor(value: Any, where: Where, base: Monitor = Monitor()) -> Monitor:
    """A `monitor:` section over base: each key it sets replaces base's; ranges checked."""
    raw = where.mapping(value, MONITOR_KEYS)
    config = Monitor(
        collect_dir=(where / "collect_dir").string(raw.get("collect_dir"), base.collect_dir),
        window=(where / "window").string(raw.get("window"), base.window),
        min_rows=(where / "min_rows").number(raw.get("min_rows"), base.min_rows, whole=True),
        psi=float((where / "psi").number(raw.get("psi"), base.psi)),
        p_value=float((where / "p_value").number(raw.get("p_value"), base.p_value)),
        retrain=(where / "retrain").boolean(raw.get("retrain"), base.retrain))
    try:
        window_seconds(config.window)
    except ConfigError as exc:
        raise (where / "window").fail(str(exc)) from None
    if not 0 < config.p_value < 1:
        raise (where / "p_value").fail(f"must be in (0, 1), got {config.p_value}")
    if config.psi <= 0:
        raise (where / "psi").fail(f"must be above 0, got {config.psi}")
    if config.min_rows < 1:
        raise (where / "min_rows").fail(f"must be at least 1, got {config.min_rows}")
    return config


# --- studio -----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Studio:
    """The `studio:` section: a reverse proxy's user header, and the login rate limits (studio/limits.py)."""

    trusted_header: str = ""
    login_max_failures: int = 5
    login_max_failures_per_address: int = 20
    login_window_minutes: int = 15
    hosts: tuple = ()  # names the Studio answers to besides 127.0.0.1/localhost/::1 (DNS rebinding)
    trusted_proxies: tuple = ()  # addresses whose X-Forwarded-For is believed (none by default)


STUDIO_LISTS = {"hosts": "host names, e.g. [studio.example.com]", "trusted_proxies": "proxy IP addresses"}


def parse_studio(value: Any, where: Where) -> Studio:
    """studio: trusted_header (an HTTP header name), login_* (whole numbers of at least 1), hosts and
    trusted_proxies (lists of names without spaces)."""
    raw = where.mapping(value, tuple(f.name for f in fields(Studio)))
    header = raw.get("trusted_header")
    header = "" if header is None else header
    if not isinstance(header, str) or any(c.isspace() for c in header):
        raise (where / "trusted_header").fail("must be an HTTP header name, e.g. X-Forwarded-User")
    limits = {}
    for item in fields(Studio)[1:]:
        if item.name in STUDIO_LISTS:
            continue
        number = raw.get(item.name, item.default)
        if isinstance(number, bool) or not isinstance(number, int) or number < 1:
            raise (where / item.name).fail("must be a whole number of at least 1")
        limits[item.name] = number
    lists = {}
    for name, what in STUDIO_LISTS.items():
        items = raw.get(name) or []
        if not isinstance(items, list) or not all(isinstance(v, str) and v and not any(c.isspace() for c in v)
                                                  for v in items):
            raise (where / name).fail(f"must be a list of {what}")
        lists[name] = tuple(v.lower() for v in items) if name == "hosts" else tuple(items)
    return Studio(trusted_header=header, **limits, **lists)
