"""$(macro) expansion at run time, as the agent does it, and the environment a step gets.

Variables become upper-cased environment variables (dots to underscores); secrets only through
env:. A macro expanded into script text whose value holds shell syntax is reported, so the step
can refuse to run it. Variables that refer to others are expanded when a job starts.
"""
from __future__ import annotations

import os
import re
import sys
from pathlib import Path

from ml_service.ci.model import expressions as ex
from ml_service.ci.model.pipeline import Var

PERSONAL_TOKEN = "MLOPS_TOKEN"  # ml_service/env.py: an approver's proof of identity (ml_service/ci/server/identity.py)

RUNTIME = re.compile(r"^\s*\$\[(.*)\]\s*$", re.DOTALL)
# What would make a value run as code, or break out of quotes, when spliced into a bash script.
SHELL_SYNTAX = re.compile(r"[`$;&|<>\"'\\\n\r]")
MAX_NESTING = 50


def substitute(text: str, lookup) -> str:
    """$(name) macros replaced as the agent replaces them (Util/VarUtil.cs ExpandValues): a macro is `$(` to the
    next `)`, whatever it holds (`$(my var with spaces)` too); lookup(name) gives the value or None (then the text
    stays as written and the search goes on one character later, so `$(a$(b))` still expands b); an inserted
    value is never expanded again."""
    start = 0
    while True:
        prefix = text.find("$(", start)
        suffix = text.find(")", prefix + 2) if prefix >= 0 else -1
        if prefix < 0 or suffix < 0:
            return text
        value = lookup(text[prefix + 2:suffix]) if suffix > prefix + 2 else None
        if value is None:
            start = prefix + 1
            continue
        text = text[:prefix] + value + text[suffix + 1:]
        start = prefix + len(value)


def expand(text: str, variables: dict[str, Var]) -> str:
    """$(name) replaced by the variable's value (names without case); unknown names are left as written."""
    lowered = {k.lower(): v.value for k, v in variables.items()}
    return substitute(text, lambda name: lowered.get(name.lower()))


def expand_script(text: str, variables: dict[str, Var]) -> tuple[str, list[str]]:
    """Macros expanded in a script's text, and the variables whose values would run as code there."""
    lowered = {k.lower(): (k, v.value) for k, v in variables.items()}
    spliced: list[str] = []

    def value(name: str) -> str | None:
        found = lowered.get(name.lower())
        if found is None:
            return None
        if SHELL_SYNTAX.search(found[1]) and found[0] not in spliced:
            spliced.append(found[0])
        return found[1]
    return substitute(text, value), spliced


def env_name(name: str) -> str:
    """A variable's environment name, as the agent makes it (VarUtil.ConvertToEnvVariableFormat): dots and spaces
    to underscores, upper-cased."""
    return name.replace(".", "_").replace(" ", "_").upper()


def step_environment(step: dict, variables: dict[str, Var], prepended: list[str],
                     platform: dict[str, str] | None = None) -> dict[str, str]:
    """The process environment of a step: ours, the platform's (where `mlops` in a step finds the project and
    the workspace: sources.platform_environment), the variables (never the secrets), its env:, PATH. Never our
    MLOPS_TOKEN: it proves a person (an approver's `mlops ci approve`), and a step is whoever wrote its code."""
    env = dict(os.environ)
    env.pop(PERSONAL_TOKEN, None)
    env.update(platform or {})
    for name, var in variables.items():
        if var.secret:  # only through env: (it may also sit in our own environment, its source)
            env.pop(name, None)
            env.pop(env_name(name), None)
        else:
            env[env_name(name)] = var.value
    for key, value in (step.get("env") or {}).items():
        env[str(key)] = expand(ex.to_str(value) if not isinstance(value, str) else value, variables)
    # Nothing of mlops's own environment on PATH (a script's python/pip would be ours, and `pip install` would
    # change the engine): as on an agent, a pipeline asks for tools (UsePythonVersion@0, task.prependpath). Our
    # own pipelines prepend $MLOPS_VENV/bin in templates/install.yml.
    # Only a virtual environment is left out: an mlops installed in the system's Python (sys.prefix /usr) must
    # not take /usr/bin away from the steps.
    engine = Path(sys.prefix).resolve() if sys.prefix != sys.base_prefix else None
    inherited = [entry for entry in env.get("PATH", "").split(os.pathsep)
                 if entry and not (engine and _inside(Path(entry), engine))]
    env["PATH"] = os.pathsep.join([*reversed(prepended), *inherited])
    if engine and env.get("VIRTUAL_ENV") and _inside(Path(env["VIRTUAL_ENV"]), engine):
        env.pop("VIRTUAL_ENV")
    env["MLOPS_VENV"] = sys.prefix
    return env


def _inside(path: Path, folder: Path) -> bool:
    """path is folder or lies under it (symbolic links resolved)."""
    try:
        resolved = path.resolve()
    except OSError:
        return False
    return resolved == folder or folder in resolved.parents


def expand_nested(variables: dict[str, Var]) -> dict[str, Var]:
    """Variables whose values refer to others (pre-$(plain)-post) expanded as the agent expands them:
    recursively, unknown names left as written, a cycle left unexpanded. Values set at run time
    (literal) are never expanded."""
    lowered = {name.lower(): name for name in variables}
    done: dict[str, str] = {}

    def value_of(name: str, stack: tuple) -> str:
        var = variables[name]
        if var.literal or "$(" not in var.value:
            return var.value
        if name in done:
            return done[name]
        if name in stack or len(stack) > MAX_NESTING:
            return var.value

        def lookup(reference: str) -> str | None:
            ref = lowered.get(reference.lower())
            return value_of(ref, (*stack, name)) if ref else None
        done[name] = substitute(var.value, lookup)
        return done[name]
    return {name: var if var.literal else Var(value_of(name, ()), var.secret, var.readonly, var.literal)
            for name, var in variables.items()}
