"""Run a compiled Azure Pipelines document locally, with Azure's meaning for what it uses.

Stages run in dependency order (default: after the previous stage), jobs in dependency order
within a stage, steps in order. Default conditions are succeeded(); a failed dependency skips its
dependants unless their condition says otherwise. Variables are exported to steps the way the
agent does (upper case, dots to underscores; secrets only through env:), $(macros) are expanded,
##vso logging commands set variables and outputs, and secret values never reach a log.
A deployment job on an environment with an approval check stops the run in state "waiting";
`mlops ci approve` resumes it from the store, no process having to stay alive meanwhile.
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ml_service.processes import kill_group
from ml_service.ci import expressions as ex
from ml_service.ci.store import Store
from ml_service.ci.tasks import TaskError, run_task
from ml_service.errors import MLOpsError

MACRO = re.compile(r"\$\(([A-Za-z_][\w.\-]*)\)")
RUNTIME = re.compile(r"^\s*\$\[(.*)\]\s*$", re.DOTALL)
SUMMARY_LIMIT = 4000  # characters of one uploaded summary
VSO = re.compile(r"##vso\[([\w.]+)([^\]]*)\](.*)")
OK = ("Succeeded", "SucceededWithIssues")
STEP_KINDS = ("script", "bash", "task", "checkout", "download", "publish", "pwsh", "powershell")


class EngineError(MLOpsError):
    """The pipeline cannot run as written (unsupported construct, bad dependency ...)."""


@dataclass
class Var:
    """A pipeline variable."""

    value: str
    secret: bool = False
    readonly: bool = False


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


@dataclass
class Stage:
    """One stage, normalized."""

    name: str
    depends_on: list[str]
    condition: str
    jobs: list[Job]
    variables: list
    display: str = ""


@dataclass
class Outcome:
    """The run's end: completed (with result) or waiting for approval."""

    status: str
    result: str
    waiting: list[str] = field(default_factory=list)


def _list(value) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


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
            raise EngineError(f"every stage needs a 'stage' name: {raw!r}")
        name = str(raw["stage"])
        depends = _list(raw["dependsOn"]) if "dependsOn" in raw else ([previous] if previous else [])
        jobs = [_job(j, name) for j in raw.get("jobs") or []]
        stages.append(Stage(name, depends, str(raw.get("condition") or "succeeded()"), jobs,
                            raw.get("variables") or [], str(raw.get("displayName") or name)))
        previous = name
    names = {s.name for s in stages}
    for stage in stages:
        for dep in stage.depends_on:
            if dep not in names:
                raise EngineError(f"stage {stage.name} depends on unknown stage '{dep}'")
        jobs = {j.name for j in stage.jobs}
        for job in stage.jobs:
            for dep in job.depends_on:
                if dep not in jobs:
                    raise EngineError(f"job {stage.name}.{job.name} depends on unknown job '{dep}'")
    return stages


def _job(raw: dict, stage: str) -> Job:
    if not isinstance(raw, dict) or not ("job" in raw or "deployment" in raw):
        raise EngineError(f"stage {stage}: every job needs a 'job' or 'deployment' name")
    name = str(raw.get("job") or raw.get("deployment"))
    environment = ""
    if "deployment" in raw:
        env = raw.get("environment")
        environment = str(env.get("name") if isinstance(env, dict) else env or "")
        strategy = raw.get("strategy") or {}
        if set(strategy) - {"runOnce"}:
            raise EngineError(f"job {stage}.{name}: only strategy runOnce is supported locally")
        run_once = strategy.get("runOnce") or {}
        unsupported = set(run_once) - {"deploy"}
        if unsupported:
            raise EngineError(f"job {stage}.{name}: runOnce hooks {sorted(unsupported)} are not supported locally")
        steps = (run_once.get("deploy") or {}).get("steps") or []
    else:
        steps = raw.get("steps") or []
    return Job(name=name, stage=stage, depends_on=_list(raw.get("dependsOn")),
               condition=str(raw.get("condition") or "succeeded()"), steps=steps,
               variables=raw.get("variables") or [], display=str(raw.get("displayName") or name),
               environment=environment, timeout_minutes=float(raw.get("timeoutInMinutes") or 60),
               continue_on_error=ex.as_bool(raw.get("continueOnError", False)))


def worst(results: list[str]) -> str:
    """Aggregate results: Failed > Canceled > SucceededWithIssues > Succeeded; all skipped: Skipped."""
    ran = [r for r in results if r != "Skipped"]
    if not ran:
        return "Skipped"
    for result in ("Failed", "Canceled", "SucceededWithIssues"):
        if result in ran:
            return result
    return "Succeeded"


class Masker:
    """Replaces every secret value by *** in text that goes to logs."""

    def __init__(self):
        self.secrets: set[str] = set()

    def add(self, value: str) -> None:
        if value and len(value) >= 3:
            self.secrets.add(value)

    def __call__(self, text: str) -> str:
        for secret in sorted(self.secrets, key=len, reverse=True):
            text = text.replace(secret, "***")
        return text


class Engine:
    """Executes one run; state (results, outputs, variables) is persisted so a run can resume."""

    def __init__(self, store: Store, run_id: int, document: dict, variables: dict[str, Var],
                 approvals: Callable[[str], dict | None], report: Callable[[str, dict], None] | None = None,
                 groups: dict | None = None):
        self.store = store
        self.groups = groups or {}
        self.run_id = run_id
        self.stages = normalize(document)
        self.variables = variables
        self.approval_check = approvals
        self.report = report or (lambda path, record: None)
        self.masker = Masker()
        for var in variables.values():
            if var.secret:
                self.masker.add(var.value)
        runtime = {name: var for name, var in variables.items() if RUNTIME.match(var.value)}
        if runtime:  # pipeline-level $[ ] variables: evaluated when the run starts
            plain = {name: var for name, var in variables.items() if name not in runtime}
            self.variables = {**plain, **self._declare([{"name": k, "value": v.value} for k, v in runtime.items()],
                                                       plain, {})}
        self.state = store.get_run(run_id).state or {}
        self.state.setdefault("results", {})
        self.state.setdefault("outputs", {})
        self.canceled = False
        self.prepended: list[str] = []

    # --- persistence ----------------------------------------------------------------------

    def _save(self) -> None:
        self.store.update_run(self.run_id, state=self.state)

    def _record(self, path: str, kind: str, **fields) -> None:
        for key in ("display", "detail", "name"):  # anything shown to people passes the masker
            if isinstance(fields.get(key), str):
                fields[key] = self.masker(fields[key])
        self.store.set_record(self.run_id, path, kind, **fields)
        self.report(path, {"kind": kind, **fields})

    # --- run ------------------------------------------------------------------------------

    def run(self) -> Outcome:
        """Run (or resume) every stage; returns completed or waiting."""
        waiting = []
        signal.signal(signal.SIGTERM, self._on_cancel)
        for stage in self._ordered(self.stages):
            if stage.name in self.state["results"]:
                continue
            result = self._stage(stage)
            if result == "Waiting":
                waiting.append(stage.name)
                break
            self.state["results"][stage.name] = result
            self._save()
        if waiting:
            self._save()
            return Outcome("waiting", "", waiting)
        results = [self.state["results"][s.name] for s in self.stages if s.name in self.state["results"]]
        overall = worst(results)
        if self.canceled:
            overall = "Canceled"
        return Outcome("completed", {"Skipped": "Succeeded"}.get(overall, overall))

    def _on_cancel(self, signum, frame):
        self.canceled = True
        raise KeyboardInterrupt("canceled")

    def _ordered(self, items):
        done, ordered = set(), []
        remaining = list(items)
        while remaining:
            ready = [i for i in remaining if all(d in done for d in i.depends_on)]
            if not ready:
                raise EngineError(f"dependency cycle among {', '.join(i.name for i in remaining)}")
            ordered.append(ready[0])
            done.add(ready[0].name)
            remaining.remove(ready[0])
        return ordered

    def _status_fn(self, dep_results: list[str]):
        def status(name: str) -> bool:
            if name == "always":
                return True
            if name == "canceled":
                return self.canceled
            if name == "succeededorfailed":
                return not self.canceled
            if name == "succeeded":
                return not self.canceled and all(r in OK for r in dep_results)
            return not self.canceled and any(r == "Failed" for r in dep_results)  # failed()
        return status

    def _condition(self, condition: str, dep_results: list[str], roots: dict, where: str) -> bool:
        try:
            return ex.to_bool(ex.run(condition, ex.Context(roots, self._status_fn(dep_results))))
        except ex.ExpressionError as exc:
            raise EngineError(f"{where}: condition: {exc}") from None

    def _stage_dependencies(self, names: list[str]) -> dict:
        return {n: {"result": self.state["results"].get(n, ""),
                    "outputs": {k.split("/", 1)[1]: v for k, v in self.state["outputs"].items()
                                if k.startswith(n + "/")}} for n in names}

    def _stage(self, stage: Stage) -> str:
        path = stage.name
        dep_results = [self.state["results"].get(d, "Skipped") for d in stage.depends_on]
        roots = {"variables": self._values(self.variables), "dependencies": self._stage_dependencies(stage.depends_on)}
        if not self._condition(stage.condition, dep_results, roots, f"stage {stage.name}"):
            self._record(path, "stage", name=stage.name, display=stage.display, status="completed", result="Skipped")
            for job in stage.jobs:
                self._record(f"{path}/{job.name}", "job", name=job.name, display=job.display, status="completed",
                             result="Skipped")
            return "Skipped"
        self._record(path, "stage", name=stage.name, display=stage.display, status="running", started=time.time())
        variables = dict(self.variables)
        variables.update(self._declare(stage.variables, variables, {}))
        job_results: dict[str, str] = {k.split("/", 1)[1]: v for k, v in self.state["results"].items()
                                       if k.startswith(stage.name + "/")}
        for job in self._ordered(stage.jobs):
            if job.name in job_results:
                continue
            result = self._job(stage, job, variables, job_results)
            if result == "Waiting":
                self._record(path, "stage", status="waiting")
                return "Waiting"
            job_results[job.name] = result
            self.state["results"][f"{stage.name}/{job.name}"] = result
            self._save()
        result = worst(list(job_results.values()))
        self._record(path, "stage", status="completed", result=result, finished=time.time())
        return result

    def _values(self, variables: dict[str, Var]) -> dict[str, str]:
        return {k: v.value for k, v in variables.items()}

    def _declare(self, declared, variables: dict[str, Var], roots: dict) -> dict[str, Var]:
        """Stage or job variables (map or list form), with $[ ] runtime expressions evaluated now."""
        from ml_service.ci.variables import parse_variables

        result = {}
        for name, var in parse_variables(declared, self.groups).items():
            match = RUNTIME.match(var.value)
            if match:
                context = {"variables": self._values({**variables, **result}), **roots}
                try:
                    var = Var(ex.to_str(ex.run(match.group(1), ex.Context(context))), var.secret, var.readonly)
                except ex.ExpressionError as exc:
                    raise EngineError(f"variable {name}: {exc}") from None
            existing = variables.get(name)
            if existing is not None and existing.readonly:
                raise EngineError(f"variable {name} is read-only")
            if var.secret:
                self.masker.add(var.value)
            result[name] = var
        return result

    def _job_roots(self, stage: Stage, job_results: dict) -> dict:
        same_stage = {name: {"result": result,
                             "outputs": self._outputs_of(stage.name, name)} for name, result in job_results.items()}
        previous = {}
        for other in self.stages:
            if other.name == stage.name:
                continue
            previous[other.name] = {j.name: {"result": self.state["results"].get(f"{other.name}/{j.name}", ""),
                                             "outputs": self._outputs_of(other.name, j.name)} for j in other.jobs}
        return {"dependencies": same_stage, "stageDependencies": previous}

    def _outputs_of(self, stage: str, job: str) -> dict:
        prefix = f"{stage}/{job}."
        return {k[len(prefix):]: v for k, v in self.state["outputs"].items() if k.startswith(prefix)}

    def _job(self, stage: Stage, job: Job, stage_vars: dict[str, Var], job_results: dict) -> str:
        path = f"{stage.name}/{job.name}"
        dep_results = [job_results.get(d, "Skipped") for d in job.depends_on]
        roots = {"variables": self._values(stage_vars), **self._job_roots(stage, job_results)}
        if not self._condition(job.condition, dep_results, roots, f"job {path}"):
            self._record(path, "job", name=job.name, display=job.display, status="completed", result="Skipped")
            return "Skipped"
        if job.environment:
            decision = self.approval_check(job.environment) and self._approval(stage, job)
            if decision == "waiting":
                self._record(path, "job", name=job.name, display=job.display, status="waiting",
                             detail=f"waiting for approval on environment {job.environment}")
                return "Waiting"
            if decision == "rejected":
                self._record(path, "job", name=job.name, display=job.display, status="completed", result="Failed",
                             detail=f"rejected on environment {job.environment}")
                return "Failed"
        started = time.time()
        self._record(path, "job", name=job.name, display=job.display, status="running", started=started)
        variables = dict(stage_vars)
        variables.update(self._declare(job.variables, variables, {k: v for k, v in roots.items() if k != "variables"}))
        variables.update({"System.StageName": Var(stage.name), "System.JobName": Var(job.name),
                          "System.JobDisplayName": Var(job.display), "Agent.JobName": Var(job.name)})
        if job.environment:
            variables["Environment.Name"] = Var(job.environment)
        deadline = started + job.timeout_minutes * 60
        self.prepended: list[str] = []  # task.prependpath lasts for the rest of the job
        results: list[str] = []
        for index, step in enumerate(job.steps):
            step_path = f"{path}/{index:02d}"
            result = self._step(stage, job, step, step_path, variables, results, deadline)
            results.append(result)
        ran = [r for r in results if r != "Skipped"]
        result = worst(ran) if ran else "Succeeded"
        if result == "Failed" and job.continue_on_error:
            result = "SucceededWithIssues"
        self._record(path, "job", status="completed", result=result, finished=time.time())
        return result

    def _approval(self, stage: Stage, job: Job) -> str:
        decided = [a for a in self.store.approvals(self.run_id) if a["stage"] == stage.name]
        if any(a["status"] == "approved" for a in decided):
            return "approved"
        if any(a["status"] in ("rejected", "timed out") for a in decided):
            return "rejected"
        check = self.approval_check(job.environment)
        self.store.request_approval(self.run_id, stage.name, job.name, job.environment,
                                    float(check.get("timeout_minutes", 1440)) * 60)
        return "waiting"

    # --- steps ------------------------------------------------------------------------------

    def _step(self, stage, job, step, path, variables, previous, deadline) -> str:
        if not isinstance(step, dict):
            raise EngineError(f"{path}: a step must be a mapping")
        kind = next((k for k in STEP_KINDS if k in step), None)
        if kind is None:
            raise EngineError(f"{path}: unknown step {sorted(step)}")
        display = self._expand(str(step.get("displayName") or self._default_display(kind, step)), variables)
        name = str(step.get("name") or "")
        self._record(path, "step", name=name or display, display=display, status="pending")
        if not ex.as_bool(step.get("enabled", True)):
            self._record(path, "step", status="completed", result="Skipped", detail="disabled")
            return "Skipped"
        roots = {"variables": self._values(variables)}
        if not self._condition(str(step.get("condition") or "succeeded()"), [r for r in previous if r != "Skipped"],
                               roots, f"step {display}"):
            self._record(path, "step", status="completed", result="Skipped")
            return "Skipped"
        log_path = self.store.log_path(self.run_id, path.replace("/", "."))
        attempts = 1 + int(step.get("retryCountOnTaskFailure") or 0)
        started = time.time()
        self._record(path, "step", status="running", started=started, log=str(log_path))
        result, detail = "Failed", ""
        for attempt in range(1, attempts + 1):
            if attempt > 1:
                with open(log_path, "a") as log:
                    log.write(f"\n--- retry {attempt - 1} of {attempts - 1} after failure: {detail}\n")
            result, detail = self._execute(kind, step, name, stage, job, variables, log_path, deadline)
            if result != "Failed" or self.canceled:
                break
        if result == "Failed" and ex.as_bool(step.get("continueOnError", False)):
            result, detail = "SucceededWithIssues", f"continued on error: {detail}"
        self._record(path, "step", status="completed", result=result, finished=time.time(), detail=detail[:4000])
        return result

    def _default_display(self, kind: str, step: dict) -> str:
        if kind in ("script", "bash", "pwsh", "powershell"):
            first = str(step[kind]).strip().splitlines()
            return f"{kind.capitalize()}: {first[0][:60] if first else ''}"
        if kind == "task":
            return str(step["task"])
        return f"{kind.capitalize()}: {step[kind]}"

    def _expand(self, text: str, variables: dict[str, Var]) -> str:
        lowered = {k.lower(): v.value for k, v in variables.items()}
        return MACRO.sub(lambda m: lowered.get(m.group(1).lower(), m.group(0)), text)

    def _env(self, step: dict, variables: dict[str, Var]) -> dict[str, str]:
        env = dict(os.environ)
        for name, var in variables.items():
            if var.secret:  # only through env: (it may also sit in our own environment, its source)
                env.pop(name, None)
                env.pop(name.upper().replace(".", "_"), None)
            else:
                env[name.upper().replace(".", "_")] = var.value
        for key, value in (step.get("env") or {}).items():
            env[str(key)] = self._expand(ex.to_str(value) if not isinstance(value, str) else value, variables)
        bin_dir = str(Path(sys.executable).parent)
        env["PATH"] = ":".join([*reversed(self.prepended), bin_dir, env.get("PATH", "")])
        env["MLOPS_VENV"] = sys.prefix
        return env

    def _execute(self, kind, step, name, stage, job, variables, log_path, deadline) -> tuple[str, str]:
        default_dir = variables["System.DefaultWorkingDirectory"].value
        workdir = Path(self._expand(str(step.get("workingDirectory") or default_dir), variables))
        if kind == "checkout":
            with open(log_path, "a") as log:
                log.write(f"checkout {step['checkout']}: sources are at {variables['Build.SourcesDirectory'].value}\n")
            return "Succeeded", ""
        if kind in ("pwsh", "powershell"):
            return "Failed", f"step '{kind}' is not supported locally (no PowerShell on this agent)"
        if kind in ("task", "download", "publish"):
            inputs = {k: self._expand(ex.to_str(v), variables) for k, v in (step.get("inputs") or {}).items()}
            expanded = {k: self._expand(v, variables) if isinstance(v, str) else v for k, v in step.items()}
            try:
                message = run_task(kind, expanded, inputs, self._task_context(variables))
            except TaskError as exc:
                with open(log_path, "a") as log:
                    log.write(self.masker(f"##[error]{exc}\n"))
                return "Failed", str(exc)
            with open(log_path, "a") as log:
                log.write(self.masker(message + "\n"))
            return "Succeeded", ""
        script = self._expand(str(step[kind]), variables)
        if not workdir.is_dir():
            return "Failed", f"workingDirectory {workdir} does not exist"
        temp = Path(variables["Agent.TempDirectory"].value)
        temp.mkdir(parents=True, exist_ok=True)
        script_path = temp / f"step-{os.getpid()}-{time.monotonic_ns()}.sh"
        script_path.write_text(script + "\n")
        timeout = float(step.get("timeoutInMinutes") or 0) * 60 or None
        remaining = deadline - time.time()
        if timeout is None or remaining < timeout:
            timeout, job_limit = remaining, True
        else:
            job_limit = False
        return self._process(["bash", "--noprofile", "--norc", str(script_path)], self._env(step, variables),
                             workdir, log_path, timeout, name, stage, job, variables, job_limit)

    def _task_context(self, variables: dict[str, Var]) -> dict:
        return {"store": self.store, "run_id": self.run_id, "variables": self._values(variables),
                "resources": self.store.get_run(self.run_id).resources}

    def _process(self, argv, env, workdir, log_path, timeout, name, stage, job, variables, job_limit):
        complete = None
        issues: list[str] = []
        with open(log_path, "a") as log:
            proc = subprocess.Popen(argv, env=env, cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True)
            timer = _Killer(proc, timeout)
            try:
                for raw in proc.stdout:
                    line = raw.decode(errors="replace")
                    command = VSO.search(line)
                    if command:
                        complete = self._vso(command, name, stage, job, variables, issues) or complete
                    log.write(self.masker(line))
                    log.flush()
                code = proc.wait()
            except KeyboardInterrupt:
                _kill_tree(proc)
                log.write("##[error]the run was canceled\n")
                raise
            finally:
                timer.cancel()
            if timer.fired:
                which = "the job's timeoutInMinutes" if job_limit else "timeoutInMinutes"
                log.write(f"##[error]the step exceeded {which}; its process tree was killed\n")
                return "Failed", f"timed out after {timeout / 60:.2f} minutes"
        if complete:
            return complete, "; ".join(issues)
        if code != 0:
            return "Failed", f"exited with code {code}" + (f"; {'; '.join(issues)}" if issues else "")
        return "Succeeded", "; ".join(issues)

    def _vso(self, match, name, stage, job, variables, issues) -> str | None:
        area, props, message = match.group(1).lower(), match.group(2), match.group(3).strip()
        fields = {}
        for part in props.strip().split(";"):
            if "=" in part:
                key, value = part.split("=", 1)
                fields[key.strip().lower()] = value.strip()
        if area == "task.setvariable":
            var_name = fields.get("variable", "")
            secret = fields.get("issecret", "").lower() == "true"
            if secret:
                self.masker.add(message)
            existing = variables.get(var_name)
            if existing is not None and existing.readonly:
                issues.append(f"variable {var_name} is read-only")
                return None
            var = Var(message, secret=secret, readonly=fields.get("isreadonly", "").lower() == "true")
            if fields.get("isoutput", "").lower() == "true":
                if not name:
                    issues.append(f"output variable {var_name} set by a step without a name")
                key = f"{name}.{var_name}"
                variables[key] = var
                self.state["outputs"][f"{stage.name}/{job.name}.{key}"] = message
                if job.environment:  # deployment jobs expose <job>.<step>.<var> too (runOnce lifecycle)
                    self.state["outputs"][f"{stage.name}/{job.name}.{job.name}.{key}"] = message
                self._save()
            else:
                variables[var_name] = var
        elif area == "task.prependpath":
            self.prepended.append(message)
        elif area == "task.logissue":
            issues.append(f"{fields.get('type', 'warning')}: {message}")
        elif area == "task.complete":
            return {"succeeded": "Succeeded", "succeededwithissues": "SucceededWithIssues",
                    "failed": "Failed"}.get(fields.get("result", "").lower())
        elif area == "task.uploadsummary":  # a markdown summary attached to the run (shown when it ends)
            self._attach_summary(message, issues)
        return None

    def _attach_summary(self, path: str, issues: list[str]) -> None:
        try:
            text = Path(path).read_text(errors="replace")[:SUMMARY_LIMIT].strip()
        except OSError as exc:
            issues.append(f"warning: summary {path} cannot be read: {exc.strerror}")
            return
        if text:
            self.state.setdefault("summaries", []).append(self.masker(text))
            self._save()


class _Killer:
    """Kills a process tree when its time is up."""

    def __init__(self, proc, timeout: float | None):
        import threading

        self.fired = False
        self._timer = None
        if timeout is not None:
            self._timer = threading.Timer(max(timeout, 0.0), self._fire, args=(proc,))
            self._timer.daemon = True
            self._timer.start()

    def _fire(self, proc) -> None:
        self.fired = True
        _kill_tree(proc)

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()


def _kill_tree(proc) -> None:
    kill_group(proc.pid)
