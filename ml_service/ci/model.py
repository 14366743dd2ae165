"""The typed model of a compiled pipeline: stages of jobs of steps, variables, results.

`normalize` turns the three Azure forms (stages:, jobs:, steps:) into stages of jobs, checks the
dependencies, and types the values the engine relies on (`schema.check` has refused unknown keys
and wrong types before, with the file and line).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from ml_service.ci import expressions as ex
from ml_service.errors import MLOpsError

STEP_KINDS = ("script", "bash", "task", "checkout", "download", "publish", "pwsh", "powershell")
SCRIPT_KINDS = ("script", "bash")


class EngineError(MLOpsError):
    """The pipeline cannot run as written (unsupported construct, bad dependency ...)."""


class Result(StrEnum):
    """The outcome of a step, job, stage or run, as Azure names it."""

    SUCCEEDED = "Succeeded"
    SUCCEEDED_WITH_ISSUES = "SucceededWithIssues"
    FAILED = "Failed"
    CANCELED = "Canceled"
    SKIPPED = "Skipped"

    @property
    def ok(self) -> bool:
        """Succeeded or succeeded with issues (what succeeded() accepts)."""
        return self in (Result.SUCCEEDED, Result.SUCCEEDED_WITH_ISSUES)


WAITING = "Waiting"  # a job or stage that stopped for an approval: not a result, the run resumes later


@dataclass
class Var:
    """A pipeline variable."""

    value: str
    secret: bool = False
    readonly: bool = False
    literal: bool = False  # set at run time (predefined, $[ ], ##vso): its $(...) are never expanded


@dataclass
class Job:
    """One job or deployment job, normalized."""

    name: str
    stage: str
    depends_on: list[str]
    condition: str
    steps: list[dict]
    variables: list
    display: str = ""
    environment: str = ""
    timeout_minutes: float = 60.0
    continue_on_error: bool = False
    where: str = ""  # file:line of its dependsOn (or of the job), for errors


@dataclass
class Stage:
    """One stage, normalized."""

    name: str
    depends_on: list[str]
    condition: str
    jobs: list[Job]
    variables: list
    display: str = ""
    where: str = ""  # file:line of its dependsOn (or of the stage), for errors


@dataclass
class Outcome:
    """The run's end: completed (with result) or waiting for approval."""

    status: str
    result: str
    waiting: list[str] = field(default_factory=list)


def as_list(value) -> list[str]:
    """dependsOn: one name or a list of names."""
    if value is None:
        return []
    return [value] if isinstance(value, str) else [str(v) for v in value]


def minutes(value, where: str, default: float) -> float:
    """timeoutInMinutes as a number (Azure reads every scalar as a string: '60' is fine)."""
    if value is None or value == "":
        return default
    try:
        number = float(str(value).strip()) if not isinstance(value, bool) else float("nan")
    except ValueError:
        number = float("nan")
    if number != number or number < 0 or number == float("inf"):
        raise EngineError(f"{where}: timeoutInMinutes must be a non-negative number, got {value!r}")
    return number


def _at(raw, key: str = "") -> str:
    """'file:line: ' of key in a mapping read from a file (yamlload.Mapping), else ''."""
    where = getattr(raw, "where", None)
    if where is None:
        return ""
    return f"{where(key if key in raw else None)}: "


def normalize(document: dict) -> list[Stage]:
    """Turn a pipeline (stages:, jobs: or steps: form) into stages of jobs."""
    if "stages" in document:
        raw_stages = document["stages"] or []
    elif "jobs" in document:
        raw_stages = [{"stage": "__default", "displayName": "Jobs", "jobs": document["jobs"]}]
    elif "steps" in document:
        raw_stages = [{"stage": "__default", "displayName": "Jobs",
                       "jobs": [{"job": "__default", "displayName": "Job", "steps": document["steps"]}]}]
    else:
        raise EngineError("a pipeline needs stages, jobs or steps")
    stages, previous = [], None
    for raw in raw_stages:
        if not isinstance(raw, dict) or "stage" not in raw:
            raise EngineError(f"{_at(raw)}every stage needs a 'stage' name: {raw!r}"[:300])
        name = str(raw["stage"])
        depends = as_list(raw["dependsOn"]) if "dependsOn" in raw else ([previous] if previous else [])
        jobs = [_job(j, name) for j in raw.get("jobs") or []]
        stages.append(Stage(name, depends, str(raw.get("condition") or "succeeded()"), jobs,
                            raw.get("variables") or [], str(raw.get("displayName") or name),
                            _at(raw, "dependsOn")))
        previous = name
    names = {s.name for s in stages}
    for stage in stages:
        for dep in stage.depends_on:
            if dep not in names:
                raise EngineError(f"{stage.where}stage {stage.name} depends on unknown stage '{dep}' (stages: "
                                  f"{', '.join(sorted(names))})")
        jobs = {j.name for j in stage.jobs}
        for job in stage.jobs:
            for dep in job.depends_on:
                if dep not in jobs:
                    raise EngineError(f"{job.where}job {stage.name}.{job.name} depends on unknown job '{dep}' "
                                      f"(jobs of stage {stage.name}: {', '.join(sorted(jobs))})")
    from ml_service.ci.planner import ordered

    ordered(stages)  # a dependency cycle is an error before anything runs
    for stage in stages:
        ordered(stage.jobs)
    return stages


def _job(raw: dict, stage: str) -> Job:
    if not isinstance(raw, dict) or not ("job" in raw or "deployment" in raw):
        raise EngineError(f"{_at(raw)}stage {stage}: every job needs a 'job' or 'deployment' name")
    name = str(raw.get("job") or raw.get("deployment"))
    environment = ""
    if "deployment" in raw:
        env = raw.get("environment")
        environment = str(env.get("name") if isinstance(env, dict) else env or "")
        strategy = raw.get("strategy") or {}
        if set(strategy) - {"runOnce"}:
            raise EngineError(f"{_at(raw, 'strategy')}job {stage}.{name}: only strategy runOnce is supported locally")
        run_once = strategy.get("runOnce") or {}
        unsupported = set(run_once) - {"deploy"}
        if unsupported:
            raise EngineError(f"{_at(raw, 'strategy')}job {stage}.{name}: runOnce hooks {sorted(unsupported)} are not "
                              "supported locally")
        steps = (run_once.get("deploy") or {}).get("steps") or []
    else:
        steps = raw.get("steps") or []
    return Job(name=name, stage=stage, depends_on=as_list(raw.get("dependsOn")),
               condition=str(raw.get("condition") or "succeeded()"), steps=steps,
               variables=raw.get("variables") or [], display=str(raw.get("displayName") or name),
               environment=environment, timeout_minutes=minutes(raw.get("timeoutInMinutes"), f"job {stage}.{name}",
                                                                60.0),
               continue_on_error=ex.as_bool(raw.get("continueOnError", False)), where=_at(raw, "dependsOn"))
