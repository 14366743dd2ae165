"""Execute one run of a compiled pipeline, with Azure's meaning for what it uses.

Stages and jobs follow the plan (planner.py); their variables are declared ($[ ] runtime
expressions evaluated, nested references expanded: macros.py) and their steps run (steps.py).
Outputs cross jobs and stages (a secret one is kept as a reference and resolved again on resume);
secret values never reach a log (masking.py).
A deployment job on an environment with an approval check stops the run in state "waiting";
`mlops ci approve` resumes it from the store, no process having to stay alive meanwhile.
"""
from __future__ import annotations

import signal
import time
from typing import Callable

from ml_service.ci import expressions as ex
from ml_service.ci import planner
from ml_service.ci.macros import RUNTIME, expand_nested
from ml_service.ci.masking import Masker
from ml_service.ci.model import WAITING, EngineError, Job, Outcome, Result, Stage, Var, normalize
from ml_service.ci.steps import Steps
from ml_service.ci.store import Store


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
        self.vault = store.load_secrets(run_id)  # secret outputs of this run: never in runs.db
        for value in self.vault.values():
            self.masker.add(value)
        self.canceled = False
        self.watchdog = None
        self.steps = Steps(self)

    # --- persistence ----------------------------------------------------------------------

    def save(self) -> None:
        self.store.update_run(self.run_id, state=self.state)

    def record(self, path: str, kind: str, **fields) -> None:
        for key in ("display", "detail", "name"):  # anything shown to people passes the masker
            if isinstance(fields.get(key), str):
                fields[key] = self.masker(fields[key])
        if "result" in fields:
            fields["result"] = str(fields["result"])
        self.store.set_record(self.run_id, path, kind, **fields)
        self.report(path, {"kind": kind, **fields})

    # --- run ------------------------------------------------------------------------------

    def run(self) -> Outcome:
        """Run (or resume) every stage; returns completed or waiting. Step processes die with this one,
        even when it is killed with SIGKILL (a watchdog process kills their groups)."""
        from ml_service.pipelines.watchdog import Watchdog

        self.watchdog = Watchdog()
        try:
            return self._run()
        finally:
            self.watchdog.close()
            self.watchdog = None

    def _run(self) -> Outcome:
        waiting = []
        signal.signal(signal.SIGTERM, self._on_cancel)
        for stage in planner.ordered(self.stages):
            if stage.name in self.state["results"]:
                continue
            result = self._stage(stage)
            if result == WAITING:
                waiting.append(stage.name)
                break
            self.state["results"][stage.name] = str(result)
            self.save()
        if waiting:
            self.save()
            return Outcome("waiting", "", waiting)
        results = [self.state["results"][s.name] for s in self.stages if s.name in self.state["results"]]
        overall = planner.worst(results)
        if self.canceled:
            overall = Result.CANCELED
        return Outcome("completed", str(Result.SUCCEEDED if overall == Result.SKIPPED else overall))

    def _on_cancel(self, signum, frame):
        self.canceled = True
        raise KeyboardInterrupt("canceled")

    def condition(self, condition: str, dep_results: list[str], roots: dict, where: str) -> bool:
        return planner.condition_holds(condition, dep_results, self.canceled, roots, where)

    def _stage_dependencies(self, names: list[str]) -> dict:
        return {n: {"result": self.state["results"].get(n, ""),
                    "outputs": {k.split("/", 1)[1]: self._output(k, v) for k, v in self.state["outputs"].items()
                                if k.startswith(n + "/")}} for n in names}

    def _output(self, key: str, stored) -> str:
        """An output's value; a secret one is stored as a reference and resolved here, again on resume."""
        if not isinstance(stored, dict):
            return stored
        source = str(stored.get("secret", ""))
        if source.startswith("group:"):  # the value of a group secret: read again from its source
            group, _, name = source[len("group:"):].partition("/")
            try:
                value = self.groups[group][name].value
            except (KeyError, AttributeError):
                value = ""
        else:
            value = self.vault.get(key, "")
        self.masker.add(value)
        return value

    def _stage(self, stage: Stage) -> str:
        path = stage.name
        dep_results = [self.state["results"].get(d, Result.SKIPPED) for d in stage.depends_on]
        roots = {"variables": self.values(self.variables), "dependencies": self._stage_dependencies(stage.depends_on)}
        if not self.condition(stage.condition, dep_results, roots, f"stage {stage.name}"):
            self.record(path, "stage", name=stage.name, display=stage.display, status="completed",
                        result=Result.SKIPPED)
            for job in stage.jobs:
                self.record(f"{path}/{job.name}", "job", name=job.name, display=job.display, status="completed",
                            result=Result.SKIPPED)
            return Result.SKIPPED
        self.record(path, "stage", name=stage.name, display=stage.display, status="running", started=time.time())
        variables = dict(self.variables)
        variables.update(self._declare(stage.variables, variables, {}))
        job_results: dict[str, str] = {k.split("/", 1)[1]: v for k, v in self.state["results"].items()
                                       if k.startswith(stage.name + "/")}
        for job in planner.ordered(stage.jobs):
            if job.name in job_results:
                continue
            result = self._job(stage, job, variables, job_results)
            if result == WAITING:
                self.record(path, "stage", status="waiting")
                return WAITING
            job_results[job.name] = str(result)
            self.state["results"][f"{stage.name}/{job.name}"] = str(result)
            self.save()
        result = planner.worst(job_results.values())
        self.record(path, "stage", status="completed", result=result, finished=time.time())
        return result

    def values(self, variables: dict[str, Var]) -> dict[str, str]:
        return {k: v.value for k, v in variables.items()}

    def _declare(self, declared, variables: dict[str, Var], roots: dict) -> dict[str, Var]:
        """Stage or job variables (map or list form), with $[ ] runtime expressions evaluated now."""
        from ml_service.ci.variables import parse_variables

        result = {}
        for name, var in parse_variables(declared, self.groups).items():
            match = RUNTIME.match(var.value)
            if match:
                context = {"variables": self.values({**variables, **result}), **roots}
                try:
                    value = ex.to_str(ex.run(match.group(1), ex.Context(context)))
                    var = Var(value, var.secret or value in self.masker.secrets, var.readonly, literal=True)
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
        return {k[len(prefix):]: self._output(k, v) for k, v in self.state["outputs"].items() if k.startswith(prefix)}

    def _job(self, stage: Stage, job: Job, stage_vars: dict[str, Var], job_results: dict) -> str:
        path = f"{stage.name}/{job.name}"
        dep_results = [job_results.get(d, Result.SKIPPED) for d in job.depends_on]
        roots = {"variables": self.values(stage_vars), **self._job_roots(stage, job_results)}
        if not self.condition(job.condition, dep_results, roots, f"job {path}"):
            self.record(path, "job", name=job.name, display=job.display, status="completed", result=Result.SKIPPED)
            return Result.SKIPPED
        if job.environment:
            decision = self.approval_check(job.environment) and self._approval(stage, job)
            if decision == "waiting":
                self.record(path, "job", name=job.name, display=job.display, status="waiting",
                            detail=f"waiting for approval on environment {job.environment}")
                return WAITING
            if decision == "rejected":
                self.record(path, "job", name=job.name, display=job.display, status="completed",
                            result=Result.FAILED, detail=f"rejected on environment {job.environment}")
                return Result.FAILED
        started = time.time()
        self.record(path, "job", name=job.name, display=job.display, status="running", started=started)
        variables = dict(stage_vars)
        variables.update(self._declare(job.variables, variables, {k: v for k, v in roots.items() if k != "variables"}))
        variables.update({name: Var(value, readonly=True, literal=True) for name, value in (
            ("System.StageName", stage.name), ("System.JobName", job.name), ("System.JobDisplayName", job.display),
            ("Agent.JobName", job.name), *((("Environment.Name", job.environment),) if job.environment else ()))})
        variables = expand_nested(variables)
        for var in variables.values():
            if var.secret:
                self.masker.add(var.value)
        deadline = started + job.timeout_minutes * 60 if job.timeout_minutes else float("inf")  # 0: no limit
        self.steps.start_job()
        results: list[str] = []
        try:
            for index, step in enumerate(job.steps):
                step_path = f"{path}/{index:02d}"
                result = self.steps.run(stage, job, step, step_path, variables, results, deadline)
                results.append(result)
        finally:
            self.steps.end_job()
        ran = [r for r in results if r != Result.SKIPPED]
        result = planner.worst(ran) if ran else Result.SUCCEEDED
        if result == Result.FAILED and job.continue_on_error:
            result = Result.SUCCEEDED_WITH_ISSUES
        self.record(path, "job", status="completed", result=result, finished=time.time())
        return result

    def _approval(self, stage: Stage, job: Job) -> str:
        decided = [a for a in self.store.approvals(self.run_id) if a["stage"] == stage.name]
        if any(a["status"] == "approved" for a in decided):
            return "approved"
        if any(a["status"] in ("rejected", "timed out") for a in decided):
            return "rejected"
        check = self.approval_check(job.environment)
        self.store.request_approval(self.run_id, stage.name, job.name, job.environment,
                                    float(check.timeout_minutes) * 60)
        return "waiting"

    # --- steps ------------------------------------------------------------------------------
