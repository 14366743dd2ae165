"""Check a compiled pipeline as Azure DevOps does before it runs: unknown keys and wrong types are
errors that say where (file:line), what was found and what was expected.

Keys Azure knows but the local engine ignores (pool, container, workspace ...) are accepted; keys
nobody knows (`stagez:`, `stepz:`) are refused, so a typo never makes a job that runs nothing.
"""
from __future__ import annotations

from typing import Any

from ml_service.ci.model.pipeline import STEP_KINDS
from ml_service.ci.model.yamlload import Mapping
from ml_service.errors import UsageError

MAX_VARIABLES = 1000  # declared in one variables block; the process environment has a kernel limit
MAX_RETRIES = 10  # Azure: retryCountOnTaskFailure is at most 10
BOOLEAN_WORDS = {"true", "false", "yes", "no", "y", "n", "on", "off"}

ROOT = {"name", "appendCommitMessageToRunName", "trigger", "pr", "schedules", "resources", "variables",
        "parameters", "stages", "jobs", "steps", "pool", "lockBehavior", "extends", "workspace", "container",
        "services", "continueOnError", "timeoutInMinutes", "cancelTimeoutInMinutes", "strategy"}
STAGE = {"stage", "displayName", "dependsOn", "condition", "variables", "jobs", "pool", "lockBehavior",
         "isSkippable", "templateContext", "trigger"}
JOB = {"job", "displayName", "dependsOn", "condition", "continueOnError", "timeoutInMinutes",
       "cancelTimeoutInMinutes", "variables", "strategy", "pool", "container", "services", "workspace", "uses",
       "steps", "templateContext"}
DEPLOYMENT = {"deployment", "displayName", "dependsOn", "condition", "continueOnError", "timeoutInMinutes",
              "cancelTimeoutInMinutes", "variables", "pool", "environment", "strategy", "workspace", "uses",
              "container", "services", "templateContext"}
STEP = {"displayName", "name", "condition", "continueOnError", "enabled", "env", "timeoutInMinutes",
        "retryCountOnTaskFailure", "target"}
STEP_EXTRA = {
    "script": {"workingDirectory", "failOnStderr"},
    "bash": {"workingDirectory", "failOnStderr"},
    "pwsh": {"workingDirectory", "failOnStderr", "errorActionPreference", "ignoreLASTEXITCODE"},
    "powershell": {"workingDirectory", "failOnStderr", "errorActionPreference", "ignoreLASTEXITCODE"},
    "task": {"inputs"},
    "checkout": {"clean", "fetchDepth", "fetchFilter", "fetchTags", "lfs", "persistCredentials", "submodules",
                 "path", "sparseCheckoutDirectories", "sparseCheckoutPatterns", "workspaceRepo"},
    "download": {"artifact", "patterns", "path"},
    "publish": {"artifact"},
}


class SchemaError(UsageError):
    """The pipeline does not have the shape Azure Pipelines requires; the message says where."""


def _at(node: Any, key: Any = None, fallback: str = "") -> str:
    if isinstance(node, Mapping):
        return node.where(key)
    return fallback or "the pipeline"


def _keys(node: Any, allowed: set[str], what: str, fallback: str) -> None:
    if not isinstance(node, dict):
        raise SchemaError(f"{fallback}: {what} must be a mapping, got {type(node).__name__} {str(node)[:60]!r}")
    for key in node:
        if key not in allowed:
            raise SchemaError(f"{_at(node, key, fallback)}: unknown key '{key}' in {what} (expected one of: "
                              f"{', '.join(sorted(allowed))})")


def _list(node: Any, key: str, what: str, fallback: str) -> list:
    value = node.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise SchemaError(f"{_at(node, key, fallback)}: '{key}' of {what} must be a list, got "
                          f"{type(value).__name__}")
    return value


def _scalar(node: dict, key: str, what: str, fallback: str) -> None:
    if key in node and isinstance(node[key], (dict, list)):
        raise SchemaError(f"{_at(node, key, fallback)}: '{key}' of {what} must be a single value, not a "
                          f"{'mapping' if isinstance(node[key], dict) else 'list'}")


def _number(node: dict, key: str, what: str, fallback: str, integer: bool = False, top: float | None = None) -> None:
    if key not in node or node[key] is None or node[key] == "":
        return
    value = node[key]
    try:
        number = float(str(value).strip()) if not isinstance(value, (bool, dict, list)) else float("nan")
    except ValueError:
        number = float("nan")
    bad = number != number or number < 0 or number == float("inf") or (integer and not number.is_integer()) or \
        (top is not None and number > top)
    if bad:
        kind = "a whole number" if integer else "a number"
        limit = f" from 0 to {top:g}" if top is not None else " (0 or more)"
        raise SchemaError(f"{_at(node, key, fallback)}: '{key}' of {what} must be {kind}{limit}, got {value!r}")


def _boolean(node: dict, key: str, what: str, fallback: str) -> None:
    if key not in node or isinstance(node[key], bool) or node[key] is None:
        return
    if str(node[key]).strip().lower() not in BOOLEAN_WORDS:
        raise SchemaError(f"{_at(node, key, fallback)}: '{key}' of {what} must be a boolean (true or false), "
                          f"got {node[key]!r}")


def _depends(node: dict, what: str, fallback: str) -> None:
    value = node.get("dependsOn")
    if value is None or isinstance(value, str):
        return
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise SchemaError(f"{_at(node, 'dependsOn', fallback)}: 'dependsOn' of {what} must be a name or a list "
                          "of names")


def _variables(node: dict, what: str, fallback: str) -> None:
    value = node.get("variables")
    if value is None:
        return
    if not isinstance(value, (dict, list)):
        raise SchemaError(f"{_at(node, 'variables', fallback)}: 'variables' of {what} must be a mapping or a list")
    if len(value) > MAX_VARIABLES:
        raise SchemaError(f"{_at(node, 'variables', fallback)}: {len(value)} variables in {what}: more than "
                          f"{MAX_VARIABLES} (every variable becomes an environment variable of every step)")
    if isinstance(value, list):
        for item in value:
            _keys(item, {"name", "value", "readonly", "group"}, f"a variable of {what}",
                  _at(node, "variables", fallback))
    else:
        for key, item in value.items():
            if isinstance(item, (dict, list)):
                raise SchemaError(f"{_at(value, key, fallback)}: variable '{key}' of {what} must be a single "
                                  "value")


def _common(node: dict, what: str, fallback: str) -> None:
    for key in ("displayName", "condition"):
        _scalar(node, key, what, fallback)
    _depends(node, what, fallback)
    _variables(node, what, fallback)
    _number(node, "timeoutInMinutes", what, fallback)
    _number(node, "cancelTimeoutInMinutes", what, fallback)
    _boolean(node, "continueOnError", what, fallback)


def check(document: Any, file: str) -> None:
    """Refuse unknown keys and wrongly typed values anywhere in a compiled pipeline."""
    _keys(document, ROOT, "the pipeline", file)
    _variables(document, "the pipeline", file)
    forms = [k for k in ("stages", "jobs", "steps") if k in document]
    if len(forms) > 1:
        raise SchemaError(f"{_at(document, forms[1], file)}: a pipeline has one of stages, jobs or steps, not "
                          f"{' and '.join(forms)}")
    for stage in _list(document, "stages", "the pipeline", file):
        _stage(stage, _at(document, "stages", file))
    for job in _list(document, "jobs", "the pipeline", file):
        _job(job, _at(document, "jobs", file))
    for step in _list(document, "steps", "the pipeline", file):
        _step(step, _at(document, "steps", file))


def _stage(stage: Any, fallback: str) -> None:
    _keys(stage, STAGE, "a stage", fallback)
    fallback = _at(stage, None, fallback)
    what = f"stage {stage.get('stage', '?')}"
    if "stage" not in stage:
        raise SchemaError(f"{fallback}: a stage needs a 'stage' name")
    _common(stage, what, fallback)
    for job in _list(stage, "jobs", what, fallback):
        _job(job, _at(stage, "jobs", fallback))


def _job(job: Any, fallback: str) -> None:
    if isinstance(job, dict) and "deployment" in job:
        _keys(job, DEPLOYMENT, "a deployment job", fallback)
    else:
        _keys(job, JOB, "a job", fallback)
    fallback = _at(job, None, fallback)
    if "job" not in job and "deployment" not in job:
        raise SchemaError(f"{fallback}: a job needs a 'job' (or 'deployment') name")
    what = f"job {job.get('job') or job.get('deployment')}"
    _common(job, what, fallback)
    strategy = job.get("strategy")
    if "deployment" in job:
        if strategy is not None:
            _keys(strategy, {"runOnce", "rolling", "canary"}, f"the strategy of {what}", _at(job, "strategy", fallback))
            run_once = strategy.get("runOnce") or {}
            _keys(run_once, {"deploy", "preDeploy", "routeTraffic", "postRouteTraffic", "on"},
                  f"runOnce of {what}", _at(strategy, "runOnce", fallback))
            deploy = run_once.get("deploy") or {}
            _keys(deploy, {"steps", "pool"}, f"runOnce.deploy of {what}", _at(run_once, "deploy", fallback))
            for step in _list(deploy, "steps", what, fallback):
                _step(step, _at(deploy, "steps", fallback))
        return
    if strategy is not None:
        _keys(strategy, {"matrix", "parallel", "maxParallel"}, f"the strategy of {what}",
              _at(job, "strategy", fallback))
        _number(strategy, "maxParallel", f"the strategy of {what}", _at(job, "strategy", fallback), integer=True)
        _number(strategy, "parallel", f"the strategy of {what}", _at(job, "strategy", fallback), integer=True,
                top=99)
    for step in _list(job, "steps", what, fallback):
        _step(step, _at(job, "steps", fallback))


def _step(step: Any, fallback: str) -> None:
    if not isinstance(step, dict):
        raise SchemaError(f"{fallback}: a step must be a mapping, got {str(step)[:60]!r}")
    kinds = [k for k in STEP_KINDS if k in step]
    if not kinds:
        raise SchemaError(f"{_at(step, None, fallback)}: a step needs one of {', '.join(STEP_KINDS)} (found: "
                          f"{', '.join(map(str, step)) or 'nothing'})")
    if len(kinds) > 1:
        raise SchemaError(f"{_at(step, kinds[1], fallback)}: a step has one of {' or '.join(kinds)}, not both")
    kind = kinds[0]
    what = f"a {kind} step"
    _keys(step, {kind} | STEP | STEP_EXTRA[kind], what, fallback)
    fallback = _at(step, None, fallback)
    if not isinstance(step[kind], (str, int, float)) or isinstance(step[kind], bool):
        raise SchemaError(f"{_at(step, kind, fallback)}: '{kind}' must be a string, got {type(step[kind]).__name__}")
    for key in ("displayName", "condition", "name", "workingDirectory"):
        _scalar(step, key, what, fallback)
    _number(step, "timeoutInMinutes", what, fallback)
    _number(step, "retryCountOnTaskFailure", what, fallback, integer=True, top=MAX_RETRIES)
    _boolean(step, "continueOnError", what, fallback)
    _boolean(step, "enabled", what, fallback)
    for key in ("env", "inputs"):
        if key in step and step[key] is not None:
            value = step[key]
            if not isinstance(value, dict):
                raise SchemaError(f"{_at(step, key, fallback)}: '{key}' of {what} must be a mapping")
            for name, item in value.items():
                if isinstance(item, (dict, list)):
                    raise SchemaError(f"{_at(value, name, fallback)}: {key} '{name}' of {what} must be a single "
                                      "value")
