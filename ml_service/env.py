"""Every MLOPS_* environment variable the platform reads, declared once: name, type, default, meaning.

As MLflow's `environment_variables.py`: each variable is a small `EnvVar` object; code reads it with
`MLOPS_ROOT.get()` (or `.get(env)` for a given mapping), never with `os.environ.get("MLOPS_ROOT")`
(tests/test_env.py fails on any other read). A value of the wrong type is an `EnvError` naming the
variable. docs/environment.md is rendered from this module (`python -m ml_service.env`).
Standard library only (and ml_service/errors.py, which is too): the scoring container imports it without the
rest of the platform.

Only the tests read these (so they stay in tests/ and the Makefile, undeclared here):
MLOPS_TEST_GROUP (a CI shard), MLOPS_ADVERSARIAL_LONG (longer adversarial serving runs),
MLOPS_UPDATE_SCREENSHOTS (rewrite the studio's documentation screenshots). MLOPS_YML in tests is a
Python constant, not a variable.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any, Mapping

from ml_service.errors import UsageError  # standard library only: ships in the scoring image

SECONDS_MAX = 86_400


class EnvError(UsageError, ValueError):
    """An MLOPS_* variable holds a value of the wrong type or out of its range (the command exits 2)."""


@dataclass(frozen=True)
class EnvVar:
    """One environment variable: its name, type (str, int, seconds, switch), default and meaning.

    An empty value counts as unset. `int` takes a whole number of at least `minimum`; `seconds` a
    number from 0 to 86400; `switch` is on unless the value is "false" (any case); `words` lists
    values other than numbers that an int variable also takes (MLOPS_WORKERS=auto).
    """

    name: str
    type: str
    default: Any
    doc: str
    group: str = "workspace"
    minimum: int = 0
    words: tuple[str, ...] = ()
    secret: bool = False

    def is_set(self, env: Mapping[str, str] | None = None) -> bool:
        """True when the variable is set to a non-empty value."""
        return bool((os.environ if env is None else env).get(self.name))

    def raw(self, env: Mapping[str, str] | None = None) -> str:
        """The value as text, "" when unset."""
        return (os.environ if env is None else env).get(self.name) or ""

    def get(self, env: Mapping[str, str] | None = None) -> Any:
        """The value, parsed to its type; the default when unset; EnvError when malformed."""
        text = self.raw(env)
        if not text:
            return self.default
        return self.parse(text)

    def parse(self, text: str) -> Any:
        """text parsed to this variable's type; EnvError naming the variable when it is not one."""
        if self.type == "int":
            if text in self.words:
                return text
            try:
                value = int(text)
            except ValueError:
                raise EnvError(f"{self.name} must be a whole number, got {text!r}") from None
            if value < self.minimum:
                raise EnvError(f"{self.name} must be at least {self.minimum}, got {value}")
            return value
        if self.type == "seconds":
            try:
                seconds = float(text)
            except ValueError:
                raise EnvError(f"{self.name} must be a number of seconds, got {text!r}") from None
            if math.isnan(seconds) or not 0 <= seconds <= SECONDS_MAX:
                raise EnvError(f"{self.name} must be between 0 and {SECONDS_MAX} seconds, got {seconds}")
            return seconds
        if self.type == "switch":
            return text.strip().lower() != "false"
        return text


VARIABLES: dict[str, EnvVar] = {}


def _declare(name: str, type: str, default: Any, doc: str, **extra: Any) -> EnvVar:
    variable = EnvVar(name, type, default, doc, **extra)
    VARIABLES[name] = variable
    return variable


# --- the workspace (mlops.yml values overridden by the environment; config.py) ---
MLOPS_ROOT = _declare(
    "MLOPS_ROOT", "str", None,
    "The project root, the folder holding mlops.yml. Default: the checkout this package is installed from.")
MLOPS_MODEL = _declare(
    "MLOPS_MODEL", "str", "",
    "The selected model project (its project folder or registered name); `--project` sets it for the "
    "command's steps. Default: the first under `models:` in mlops.yml.")
MLOPS_SERVER_WAIT = _declare(
    "MLOPS_SERVER_WAIT", "int", 15,
    "Seconds a command waits for the workspace's MLflow server to answer before it says the server is down.",
    minimum=0)
MLOPS_STATE_DIR = _declare(
    "MLOPS_STATE_DIR", "str", "",
    "Overrides mlops.yml `workspace.state_dir` (default `.mlops`): the local store, CI runs, reports.")
MLOPS_TRACKING_URI = _declare(
    "MLOPS_TRACKING_URI", "str", "",
    "Overrides mlops.yml `workspace.tracking_uri` and the URI `mlops workspace up` or `use` wrote. "
    "Default: sqlite under the state dir.")
MLOPS_RUN_USER = _declare(
    "MLOPS_RUN_USER", "str", "",
    "Set by the pipeline runner in a step's environment on a team server: the run's own short-lived server user "
    "(MLFLOW_TRACKING_USERNAME / _PASSWORD hold its credential); settings read in the step use it, never the "
    "checkout's password file.")
MLOPS_ARTIFACT_ROOT = _declare(
    "MLOPS_ARTIFACT_ROOT", "str", "",
    "Overrides mlops.yml `workspace.artifact_root`. Default: `<state_dir>/artifacts`.")
MLOPS_MODEL_NAME = _declare(
    "MLOPS_MODEL_NAME", "str", "",
    "Renames the selected model project's registered model (tests, forks). In the scoring container: "
    "the name of the model it serves (default `model`).", group="workspace and serving")
MLOPS_EXPERIMENT = _declare(
    "MLOPS_EXPERIMENT", "str", "",
    "Renames the selected model project's MLflow experiment (tests, forks).")
MLOPS_BUILD_ID = _declare(
    "MLOPS_BUILD_ID", "str", "",
    "The CI build that runs the command, recorded on runs and model versions.")
MLOPS_CI_JOB = _declare(
    "MLOPS_CI_JOB", "str", "",
    "Set by the CI engine in every step of a job (never by you): the job's token, by which the processes a step "
    "left behind are found and ended with the job.")
MLOPS_BUILD_URI = _declare(
    "MLOPS_BUILD_URI", "str", "",
    "A link to that CI build, recorded beside the build id.")
MLOPS_USER = _declare(
    "MLOPS_USER", "str", "",
    "The name someone acts under, else git user.email, else the OS account. A claim, never proof "
    "(approvals ask for MLOPS_TOKEN).")
MLOPS_BASE_IMAGE = _declare(
    "MLOPS_BASE_IMAGE", "str", "",
    "Overrides mlops.yml `deploy.base_image` (default `mlops-python:3.11-bookworm`).")
MLOPS_IMAGE_REGISTRY = _declare(
    "MLOPS_IMAGE_REGISTRY", "str", "",
    "Overrides mlops.yml `deploy.registry`: push scoring images there after building.")
MLOPS_DEBUG = _declare(
    "MLOPS_DEBUG", "str", "",
    "`1`: the `mlops` command prints the traceback of an expected error too.")

# --- identity, secrets and tools of the command line ---
MLOPS_TOKEN = _declare(
    "MLOPS_TOKEN", "str", "",
    "A personal token of this workspace (`mlops ci token create`): proof of an approver's identity.",
    group="identity and tools", secret=True)
MLOPS_SCORING_KEY = _declare(
    "MLOPS_SCORING_KEY", "str", "",
    "The scoring key smoke tests present to a deployment whose keys are on (`mlops smoke-test --key-env`).",
    group="identity and tools", secret=True)
MLOPS_HELM = _declare(
    "MLOPS_HELM", "str", "",
    "The helm binary. Default: the one beside this Python, else the one on PATH.", group="identity and tools")
MLOPS_KUBECTL = _declare(
    "MLOPS_KUBECTL", "str", "",
    "The kubectl binary. Default: the one beside this Python, else the one on PATH.", group="identity and tools")
MLOPS_TUNE_STORAGE = _declare(
    "MLOPS_TUNE_STORAGE", "str", "",
    "The SQLAlchemy URL of the Optuna studies (a tuning worker on another machine). Default: the "
    "workspace's own (sqlite beside the store, or the team's PostgreSQL).", group="identity and tools")
MLOPS_VENV = _declare(
    "MLOPS_VENV", "str", "",
    "Set by the CI engine for every step: the virtual environment of the `mlops` that runs it.",
    group="identity and tools")
MLOPS_CI_JOB = _declare(
    "MLOPS_CI_JOB", "str", "",
    "Set by the CI engine for every step: the job's token; at the job's end every process of this user that "
    "still carries it is killed (ci/reaper.py).", group="identity and tools")
MLOPS_TEST_PAUSE = _declare(
    "MLOPS_TEST_PAUSE", "str", "",
    "Tests only: `<point>:<file>` makes the process that reaches <point> write <file> and wait to be "
    "killed (workspace/faults.py).", group="identity and tools")

# --- the scoring service (serving/config.py; the container has only its environment) ---
MLOPS_SCORE_MODULE = _declare(
    "MLOPS_SCORE_MODULE", "str", "ml_service.serving.pyfunc_score",
    "The module with init(model_dir) and run(data) that scores (default: any MLflow model).", group="serving")
MLOPS_MODEL_VERSION = _declare(
    "MLOPS_MODEL_VERSION", "str", "0", "The version of the model the service serves.", group="serving")
MLOPS_SCORING_KEYS = _declare(
    "MLOPS_SCORING_KEYS", "str", "",
    "Comma-separated keys (16 characters or more) a request must carry; unset: no auth.",
    group="serving", secret=True)
MLOPS_SCORING_KEY_FILE = _declare(
    "MLOPS_SCORING_KEY_FILE", "str", "",
    "A file with one scoring key a line, added to MLOPS_SCORING_KEYS.", group="serving")
MLOPS_WORKERS = _declare(
    "MLOPS_WORKERS", "int", 1, "Worker processes, or `auto` for one a CPU (`auto` in the image).",
    group="serving", minimum=1, words=("auto",))
MLOPS_MAX_BODY_BYTES = _declare(
    "MLOPS_MAX_BODY_BYTES", "int", 1_000_000, "Largest request body.", group="serving", minimum=1)
MLOPS_MAX_ROWS = _declare(
    "MLOPS_MAX_ROWS", "int", 100_000, "Most rows in one request.", group="serving", minimum=1)
MLOPS_MAX_HEADER_BYTES = _declare(
    "MLOPS_MAX_HEADER_BYTES", "int", 16_384, "Largest request head.", group="serving", minimum=1024)
MLOPS_HEADER_TIMEOUT_SECONDS = _declare(
    "MLOPS_HEADER_TIMEOUT_SECONDS", "seconds", 10.0, "Time to send the request head.", group="serving")
MLOPS_BODY_TIMEOUT_SECONDS = _declare(
    "MLOPS_BODY_TIMEOUT_SECONDS", "seconds", 30.0, "Time to send the request body.", group="serving")
MLOPS_KEEP_ALIVE_SECONDS = _declare(
    "MLOPS_KEEP_ALIVE_SECONDS", "seconds", 5.0, "An idle kept-alive connection is closed after this.",
    group="serving")
MLOPS_MAX_CONNECTIONS = _declare(
    "MLOPS_MAX_CONNECTIONS", "int", 1_000, "Open connections of one worker.", group="serving", minimum=1)
MLOPS_OFFLOAD_BYTES = _declare(
    "MLOPS_OFFLOAD_BYTES", "int", 16_384, "Bodies above this are parsed off the event loop.", group="serving")
MLOPS_SCORING_THREADS = _declare(
    "MLOPS_SCORING_THREADS", "int", 1, "Threads that run the score module in one worker.", group="serving",
    minimum=1)
MLOPS_DRAIN_SECONDS = _declare(
    "MLOPS_DRAIN_SECONDS", "seconds", 2.0, "On SIGTERM: not ready for this long before closing.", group="serving")
MLOPS_GRACEFUL_TIMEOUT_SECONDS = _declare(
    "MLOPS_GRACEFUL_TIMEOUT_SECONDS", "seconds", 20.0, "On SIGTERM: time for requests in flight to finish.",
    group="serving")
MLOPS_COLLECT_DIR = _declare(
    "MLOPS_COLLECT_DIR", "str", "", "Collect scored inputs and predictions here (for drift); unset: none.",
    group="serving")
MLOPS_COLLECT_MAX_BYTES = _declare(
    "MLOPS_COLLECT_MAX_BYTES", "int", 10_000_000, "Size of one collected file before the next begins.",
    group="serving", minimum=1)
MLOPS_COLLECT_KEEP_FILES = _declare(
    "MLOPS_COLLECT_KEEP_FILES", "int", 20, "Collected files kept; the oldest go first.", group="serving",
    minimum=1)
MLOPS_COLLECT_FLUSH_SECONDS = _declare(
    "MLOPS_COLLECT_FLUSH_SECONDS", "seconds", 1.0, "Collected rows are written at least this often.",
    group="serving")
MLOPS_LOG_REQUESTS = _declare(
    "MLOPS_LOG_REQUESTS", "switch", True, "One log line a request, unless `false`.", group="serving")

# --- variables of other tools that the platform reads (declared here, so that this module stays the one reader) ---
MLFLOW_TRACKING_USERNAME = _declare(
    "MLFLOW_TRACKING_USERNAME", "str", "",
    "MLflow's: the team server user (`mlops workspace use` sets it for this checkout's commands).", group="other tools")
MLFLOW_TRACKING_PASSWORD = _declare(
    "MLFLOW_TRACKING_PASSWORD", "str", "", "MLflow's: that user's password.", group="other tools", secret=True)
XDG_CACHE_HOME = _declare(
    "XDG_CACHE_HOME", "str", "", "Where the shared wheelhouse lives (default `~/.cache`).", group="other tools")
SPARK_CONF_DIR = _declare(
    "SPARK_CONF_DIR", "str", "", "Spark's: its configuration folder (default `$SPARK_HOME/conf`).", group="other tools")
SPARK_HOME = _declare("SPARK_HOME", "str", "", "Spark's: where Spark is installed.", group="other tools")

GROUPS = ("workspace", "workspace and serving", "identity and tools", "serving", "other tools")


def render_markdown() -> str:
    """docs/environment.md: every variable by group, with type, default and meaning."""
    lines = ["# Environment variables", "",
             "Every `MLOPS_*` variable the platform reads, and the variables of other tools it reads, generated from "
             "`ml_service/env.py` "
             "(`python -m ml_service.env > docs/environment.md`); a test keeps the two equal. "
             "An empty value counts as unset. Secrets are never written to mlops.yml or logs.", ""]
    for group in GROUPS:
        lines += [f"## {group[0].upper()}{group[1:]}", "", "| Variable | Type | Default | Meaning |",
                  "|---|---|---|---|"]
        for variable in VARIABLES.values():
            if variable.group != group:
                continue
            default = "" if variable.default in (None, "") else f"`{variable.default}`"
            kind = variable.type + (f" ≥ {variable.minimum}" if variable.minimum else "") + \
                (" (secret)" if variable.secret else "")
            lines.append(f"| `{variable.name}` | {kind} | {default} | {variable.doc} |")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    print(render_markdown(), end="")
