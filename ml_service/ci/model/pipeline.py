"""The typed model of a compiled pipeline: stages of jobs of steps, variables, results.

`normalize` turns the three Azure forms (stages:, jobs:, steps:) into stages of jobs, checks the
dependencies, and types the values the engine relies on (`schema.check` has refused unknown keys
and wrong types before, with the file and line).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Iterable, TypeVar

from ml_service.ci.model import expressions as ex
from ml_service.errors import MLOpsError

T = TypeVar("T")

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
    environment_resource: str = ""  # the resource of the environment a deployment targets (name.resource)
    timeout_minutes: float = 60.0
    continue_on_error: bool = False
    where: str = ""  # file:line of its dependsOn (or of the job), for errors
    checkout: bool = True  # False: a deployment job without a checkout step gets no sources (steps-checkout.md)
    container: object = None  # `container:` of a container job (preflight.py names it: no local meaning)
    strategy: dict | None = None  # matrix / parallel / maxParallel of a job (expanded into legs when it runs)
    container_where: str = ""
    services: object = None  # service containers of the job (preflight.py names them)
    agentless: bool = False  # `pool: server` (its own, its stage's or the pipeline's): an agentless job
    pool_where: str = ""  # file:line of the `pool: server` that makes it agentless
    workspace_clean: str = ""  # `workspace: {clean: outputs | resources | all}` (phases.md "Workspace")
    cancel_timeout_minutes: float = 5.0  # how long always() steps may run once the job is canceled (timed out)


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
        job = {"job": "__default", "displayName": "Job", "steps": document["steps"]}
        for key in ("strategy", "continueOnError", "timeoutInMinutes"):
            if key in document:  # the steps-only form: these apply to its one implicit job
                job[key] = document[key]
        raw_stages = [{"stage": "__default", "displayName": "Jobs", "jobs": [job]}]
    else:
        raise EngineError("a pipeline needs stages, jobs or steps")
    stages, previous = [], None
    for raw in raw_stages:
        if not isinstance(raw, dict) or "stage" not in raw:
            raise EngineError(f"{_at(raw)}every stage needs a 'stage' name: {raw!r}"[:300])
        name = str(raw["stage"])
        depends = as_list(raw["dependsOn"]) if "dependsOn" in raw else ([previous] if previous else [])
        pool = raw["pool"] if "pool" in raw else document.get("pool")
        pool_at = _at(raw if "pool" in raw else document, "pool")
        jobs = _named([_job(j, name, pool, pool_at) for j in raw.get("jobs") or []], name, raw.get("jobs") or [])
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
    ordered(stages)  # a dependency cycle is an error before anything runs
    for stage in stages:
        ordered(stage.jobs)
    return stages


def _named(jobs: list[Job], stage: str, raws: list) -> list[Job]:
    """Jobs with names: `- job:` without one is valid and gets Job, Job1, Job2 ... (Azure shows "Job";
    Azure/azure-rest-api-specs#27338), never a name another job has; two jobs of one name are refused, as
    Azure does ("Stage {0} job {1} appears more than once. Job names must be unique within a stage.",
    DistributedTask.Pipelines PipelineStrings.StagePhaseNamesMustBeUnique)."""
    taken = {job.name for job in jobs if job.name}
    seen: dict[str, str] = {}
    counter = 0
    for job, raw in zip(jobs, raws):
        if not job.name:
            candidate = "Job"
            while candidate in taken:
                counter += 1
                candidate = f"Job{counter}"
            job.name = candidate
            job.display = job.display or candidate
            taken.add(candidate)
        where = _at(raw, "job" if "job" in raw else "deployment")
        if job.name in seen:
            shown = "" if stage == "__default" else f"stage {stage} "
            raise EngineError(f"{where}{shown}job {job.name} appears more than once (first at {seen[job.name]}). "
                              "Job names must be unique within a stage: rename one")
        seen[job.name] = where.rstrip(": ") or "?"
    return jobs


HOOKS = ("preDeploy", "deploy", "routeTraffic", "postRouteTraffic")
AUTO_DOWNLOAD = {"download": "current", "displayName": "Download artifacts (automatic)", "__auto": True}


def _guarded(steps: list, condition: str) -> list:
    """Steps that run only when condition holds (and their own condition, if any)."""
    guarded = []
    for step in steps:
        if isinstance(step, dict):
            own = step.get("condition")
            step = {**step, "condition": f"and({condition}, {own})" if own else condition}
        guarded.append(step)
    return guarded


def run_once_steps(run_once: dict) -> list:
    """The runOnce lifecycle as one list of steps (jobs-deployment-strategy-run-once.md): preDeploy, deploy,
    routeTraffic, postRouteTraffic, then on: failure or on: success. A failure skips the later lifecycle hooks
    (their steps' default condition succeeded()) and runs on.failure. The deploy hook downloads every artifact
    of the run and of its pipeline resources first, unless it has a download step (`download: none` stops it;
    steps-download.md "Automatic download in deployment jobs")."""
    steps: list = []
    for hook in HOOKS:
        hook_steps = list((run_once.get(hook) or {}).get("steps") or [])
        if hook == "deploy" and not any(isinstance(s, dict) and "download" in s for s in hook_steps):
            hook_steps.insert(0, dict(AUTO_DOWNLOAD))
        steps += hook_steps
    on = run_once.get("on") or {}
    steps += _guarded((on.get("failure") or {}).get("steps") or [], "failed()")
    steps += _guarded((on.get("success") or {}).get("steps") or [], "succeeded()")
    return steps


def is_server(pool) -> bool:
    """Is a `pool:` value Azure's agentless pool (`pool: server`; jobs-job.md "Server jobs")?"""
    return isinstance(pool, str) and pool.strip().lower() == "server"


def _job(raw: dict, stage: str, pool=None, pool_at: str = "") -> Job:
    if not isinstance(raw, dict) or not ("job" in raw or "deployment" in raw):
        raise EngineError(f"{_at(raw)}stage {stage}: every job needs a 'job' or 'deployment' name")
    value = raw.get("job") if "job" in raw else raw.get("deployment")
    name = "" if value is None else str(value)
    environment = resource = ""
    checkout = True
    if "deployment" in raw:
        env = raw.get("environment")
        # `environment: name.resource` and {name, resourceName, resourceType} target a resource of the environment
        # (deployment-jobs.md, yaml-schema jobs-deployment-environment): the environment, its approvals and
        # $(Environment.Name) are the part before the first dot; $(Environment.ResourceName) the rest
        if isinstance(env, dict):
            environment, resource = str(env.get("name") or ""), str(env.get("resourceName") or "")
            kind = str(env.get("resourceType") or "").strip().lower()
            if kind == "virtualmachine":
                raise EngineError(f"{_at(raw, 'environment')}job {stage}.{name}: environment resourceType "
                                  "VirtualMachine runs the deployment on each virtual machine registered in the "
                                  "environment, which a local run has none of: remove resourceType (the steps then "
                                  "run here once) or deploy with a script step")
        else:
            environment, _, resource = str(env or "").partition(".")
        strategy = raw.get("strategy") or {}
        if set(strategy) - {"runOnce"}:
            raise EngineError(f"{_at(raw, 'strategy')}job {stage}.{name}: only strategy runOnce is supported locally "
                              f"(rolling and canary deploy to VM or Kubernetes resources of an environment: "
                              "use runOnce with a script that deploys)")
        run_once = strategy.get("runOnce") or {}
        unsupported = set(run_once) - {*HOOKS, "on", "pool"}
        if unsupported:
            raise EngineError(f"{_at(raw, 'strategy')}job {stage}.{name}: unknown runOnce hook(s) "
                              f"{sorted(map(str, unsupported))} (expected: {', '.join(HOOKS)}, on)")
        steps = run_once_steps(run_once)
        checkout = any(isinstance(s, dict) and "checkout" in s and str(s["checkout"]) != "none" for s in steps)
    else:
        steps = raw.get("steps") or []
    return Job(name=name, stage=stage, depends_on=as_list(raw.get("dependsOn")), checkout=checkout,
               container=raw.get("container"), services=raw.get("services"),
               strategy=raw.get("strategy") if "job" in raw else None,
               container_where=_at(raw, "container").rstrip(": "),
               condition=str(raw.get("condition") or "succeeded()"), steps=steps,
               variables=raw.get("variables") or [], display=str(raw.get("displayName") or name or ""),
               environment=environment, environment_resource=resource if "deployment" in raw else "",
               timeout_minutes=minutes(raw.get("timeoutInMinutes"), f"job {stage}.{name}", 60.0),
               continue_on_error=ex.as_bool(raw.get("continueOnError", False)), where=_at(raw, "dependsOn"),
               agentless=is_server(raw["pool"] if "pool" in raw else pool),
               pool_where=(_at(raw, "pool") if "pool" in raw else pool_at).rstrip(": "),
               workspace_clean=str((raw.get("workspace") or {}).get("clean") or "").strip().lower()
               if isinstance(raw.get("workspace"), dict) else "",
               cancel_timeout_minutes=minutes(raw.get("cancelTimeoutInMinutes"), f"job {stage}.{name}", 5.0) or 5.0)


def ordered(items: Iterable[T]) -> list[T]:
    """Items (with .name and .depends_on) in an order that honours every dependency."""
    done, order = set(), []
    remaining = list(items)
    while remaining:
        ready = [i for i in remaining if all(d in done for d in i.depends_on)]
        if not ready:
            where = getattr(remaining[0], "where", "")
            raise EngineError(f"{where}dependency cycle among {', '.join(i.name for i in remaining)}")
        order.append(ready[0])
        done.add(ready[0].name)
        remaining.remove(ready[0])
    return order


def definition_id(name: str) -> str:
    """A stable number for a definition name (Azure's System.DefinitionId / resources.pipeline.X.pipelineID)."""
    import zlib

    return str(zlib.crc32(name.encode()) % 100000 + 1)
