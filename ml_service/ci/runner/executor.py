"""Execute one run of a compiled pipeline, with Azure's meaning for what it uses.

Stages and jobs follow the plan (planner.py); their variables are declared ($[ ] runtime
expressions evaluated, nested references expanded: macros.py) and their steps run (steps.py).
Outputs cross jobs and stages (a secret one is kept as a reference and resolved again on resume);
secret values never reach a log (masking.py).
A deployment job on an environment with an approval check stops the run in state "waiting";
`mlops ci approve` resumes it from the store, no process having to stay alive meanwhile.
"""
from __future__ import annotations

import functools
import os
import re
import shutil
import signal
import time
import uuid
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from ml_service.ci.model import expressions as ex
from ml_service.ci.model.pipeline import WAITING, EngineError, Job, Outcome, Result, Stage, Var, normalize, ordered
from ml_service.ci.runner import macros, planner, process, sources
from ml_service.ci.runner.macros import RUNTIME, expand_nested
from ml_service.ci.runner.masking import Masker
from ml_service.ci.runner.steps import Steps

if TYPE_CHECKING:  # the runner is given the run store; it never imports the server
    from ml_service.ci.server.store import Store


MAX_LEGS = 256  # jobs one matrix may make (Azure's limit is not documented; 256 is the commonly cited figure)


class Engine:
    """Executes one run; state (results, outputs, variables) is persisted so a run can resume."""

    def __init__(self, store: Store, run_id: int, document: dict, variables: dict[str, Var],
                 approvals: Callable[[str], dict | None], report: Callable[[str, dict], None] | None = None,
                 groups: dict | None = None):
        self.store = store
        self.groups = groups or {}
        self.run_id = run_id
        self.stages = normalize(document)
        self.document = document
        self.variables = variables
        self.approval_check = approvals
        self.report = report or (lambda path, record: None)
        self.masker = Masker()
        run = store.get_run(run_id)
        # pipeline.startTime: the run's start as a date, for format('{0:yyyyMMdd}', pipeline.startTime) in $[ ] and
        # conditions (expressions.md "counter"; in the time zone $(Date:...) of the run number uses)
        self.pipeline_root = {"startTime": datetime.fromtimestamp(run.created or time.time()).astimezone()}
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
        self.cancels = 0  # how many cancels came (a step during which one came ends Canceled)
        self.job_canceled = False  # the running job passed its timeoutInMinutes: canceled, as Azure cancels it
        self.log_max_bytes = 0  # a step log's cap (mlops.yml ci.log_max_mb; 0: steplog's default)
        self.definitions: dict[str, str] = {}  # pipeline file stem -> definition name (mlops.yml ci.pipelines)
        self.repositories: dict = {}  # mlops.yml ci.repositories: alias or project/repo -> path or git URL
        self.registries: dict = {}  # mlops.yml ci.registries: Docker registry connection -> registry address
        from ml_service.ci.runner.preflight import Plan

        self.plan = Plan()  # what cannot run here (preflight.py): those steps and jobs fail when reached
        self.checkout: dict = {}  # what a job's checkout of self holds (sources.describe, the run's state)
        self.source_dir: Path | None = None  # the repository (or folder) the run was queued from
        self.platform: Callable[[Path, Path], dict] | None = None  # (project root, workspace) -> MLOPS_* for steps
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
        from ml_service.ci.runner.reaper import become_subreaper

        become_subreaper()  # orphans of the steps (daemons) are re-parented here, not to init
        try:
            return self._run()
        finally:
            self.watchdog.close()
            self.watchdog = None

    def _run(self) -> Outcome:
        waiting = []
        signal.signal(signal.SIGTERM, self._on_cancel)
        for stage in ordered(self.stages):
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
        """A cancel (SIGTERM from `mlops ci cancel`). As on Azure, the running step is canceled and the run goes on
        with what still applies: steps, jobs and stages whose condition holds when the run is canceled (always(),
        canceled(); conditions.md, the agent's StepsRunner.cs re-evaluating conditions). A second cancel, or one
        that comes when no step process runs, stops the run at once."""
        first = not self.canceled
        self.canceled = True
        self.cancels += 1
        if first and process.cancel_running():
            return
        raise KeyboardInterrupt("canceled")

    def condition(self, condition: str, dep_results: list[str], roots: dict, where: str,
                  named: dict[str, str] | None = None, step: bool = False) -> bool:
        """A stage's or job's condition sees whether the run was canceled; a step's, whether its job was (canceled
        or timed out while it ran: a job that starts after a cancel runs its steps as any job does)."""
        return planner.condition_holds(condition, dep_results, self.job_canceled if step else self.canceled,
                                       {"pipeline": self.pipeline_root, **roots}, where, named)

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
        named = dict(zip(stage.depends_on, dep_results))
        if not self.condition(stage.condition, dep_results, roots, f"stage {stage.name}", named):
            self.record(path, "stage", name=stage.name, display=stage.display, status="completed",
                        result=Result.SKIPPED)
            for job in stage.jobs:
                self.record(f"{path}/{job.name}", "job", name=job.name, display=job.display, status="completed",
                            result=Result.SKIPPED)
            return Result.SKIPPED
        self.record(path, "stage", name=stage.name, display=stage.display, status="running", started=time.time())
        variables = dict(self.variables)
        variables.update(self._declare(stage.variables, variables,
                                       {"stageDependencies": self._stage_outputs(stage.name)}))
        job_results: dict[str, str] = {k.split("/", 1)[1]: v for k, v in self.state["results"].items()
                                       if k.startswith(stage.name + "/")}
        for job in ordered(stage.jobs):
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
        from ml_service.ci.model.variables import parse_variables

        result = {}
        for name, var in parse_variables(declared, self.groups).items():
            match = RUNTIME.match(var.value)
            if match:
                context = {"pipeline": self.pipeline_root, "variables": self.values({**variables, **result}), **roots}
                try:
                    counter = functools.partial(self.store.counter, self.run_id)
                    value = ex.to_str(ex.run(match.group(1), ex.Context(context, counter=counter)))
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

    def _stage_outputs(self, current: str) -> dict:
        """stageDependencies as a stage's or job's $[ ] expressions see it: every other stage's jobs, with their
        results and outputs (docs/pipelines/process/variables.md "Use outputs in a different stage")."""
        return {other.name: {j.name: {"result": self.state["results"].get(f"{other.name}/{j.name}", ""),
                                      "outputs": self._outputs_of(other.name, j.name)} for j in other.jobs}
                for other in self.stages if other.name != current}

    def _job_roots(self, stage: Stage, job_results: dict) -> dict:
        same_stage = {name: {"result": result,
                             "outputs": self._outputs_of(stage.name, name)} for name, result in job_results.items()}
        return {"dependencies": same_stage, "stageDependencies": self._stage_outputs(stage.name)}

    def _outputs_of(self, stage: str, job: str) -> dict:
        prefix = f"{stage}/{job}."
        return {k[len(prefix):]: self._output(k, v) for k, v in self.state["outputs"].items() if k.startswith(prefix)}

    def _job(self, stage: Stage, job: Job, stage_vars: dict[str, Var], job_results: dict) -> str:
        path = f"{stage.name}/{job.name}"
        dep_results = [job_results.get(d, Result.SKIPPED) for d in job.depends_on]
        roots = {"variables": self.values(stage_vars), **self._job_roots(stage, job_results)}
        named = dict(zip(job.depends_on, dep_results))
        if not self.condition(job.condition, dep_results, roots, f"job {path}", named):
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
        if path in self.plan.job_stops:  # a container job: named before the run, fails here
            self.record(path, "job", name=job.name, display=job.display, status="completed", result=Result.FAILED,
                        started=time.time(), finished=time.time(), detail=self.plan.job_stops[path])
            return Result.FAILED
        if not job.strategy:
            return self._run_job(stage, job, path, stage_vars, roots, {})
        legs = self._legs(job, path, roots)
        self.record(path, "job", name=job.name, display=job.display, status="running", started=time.time())
        results = []
        for position, (leg, values) in enumerate(legs, 1):
            extra = {**values, "System.JobPositionInPhase": str(position), "System.TotalJobsInPhase": str(len(legs)),
                     "__leg": leg}
            result = self._run_job(stage, job, f"{path}/{leg}", stage_vars, roots, extra)
            if result == WAITING:
                self.record(path, "job", status="waiting")
                return WAITING
            results.append(result)
        result = planner.worst(results) if results else Result.SKIPPED
        self.record(path, "job", status="completed", result=result, finished=time.time())
        return result

    def _legs(self, job: Job, path: str, roots: dict) -> list[tuple[str, dict]]:
        """The copies a job's strategy makes (docs/pipelines/process/phases.md "Multi-job configuration",
        "Slicing"): one per matrix configuration (its keys become variables over the job's), or `parallel: N`
        slices job1..jobN; a matrix may be a $[ ] runtime expression holding a JSON object. maxParallel only
        limits how many run at once: the local engine runs jobs one after another."""
        import yaml

        strategy = job.strategy or {}
        if strategy.get("parallel") not in (None, ""):
            count = int(float(str(strategy["parallel"])))
            return [(f"job{i}", {}) for i in range(1, count + 1)]
        matrix = strategy.get("matrix")
        if isinstance(matrix, str):
            runtime = RUNTIME.match(matrix)
            if not runtime:
                raise EngineError(f"job {path}: strategy matrix must be a mapping or a $[ ] expression, got "
                                  f"{matrix[:60]!r}")
            try:
                text = ex.to_str(ex.run(runtime.group(1), ex.Context({"pipeline": self.pipeline_root, **roots})))
                matrix = yaml.safe_load(text) if text.strip() else {}
            except (ex.ExpressionError, yaml.YAMLError) as exc:
                raise EngineError(f"job {path}: strategy matrix: {exc}") from None
        if not isinstance(matrix, dict):
            raise EngineError(f"job {path}: strategy matrix must be a mapping of configurations")
        legs = []
        for leg, values in matrix.items():
            if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]{0,99}", str(leg)):
                raise EngineError(f"job {path}: matrix configuration name '{leg}' must start with a letter and hold "
                                  "only letters, digits and '_' (at most 100)")
            legs.append((str(leg), {str(k): ex.to_str(v) if not isinstance(v, str) else v
                                    for k, v in (values or {}).items()}))
        if len(legs) > MAX_LEGS:
            raise EngineError(f"job {path}: the matrix expands to {len(legs)} jobs (more than {MAX_LEGS})")
        return legs

    def _run_job(self, stage: Stage, job: Job, path: str, stage_vars: dict[str, Var], roots: dict,
                 leg: dict) -> str:
        """Run one job (or one leg of a matrix / slice of a parallel job: leg holds its variables)."""
        started = time.time()
        leg = dict(leg)
        leg_name = leg.pop("__leg", "")
        display = f"{job.display} {leg_name}" if leg_name else job.display
        self.record(path, "job", name=leg_name or job.name, display=display, status="running", started=started)
        variables = dict(stage_vars)
        variables.update(self._declare(job.variables, variables, {k: v for k, v in roots.items() if k != "variables"}))
        variables.update({name: Var(value) for name, value in leg.items() if not name.startswith("System.")})
        variables.update({name: Var(value, readonly=True, literal=True) for name, value in (
            ("System.StageName", stage.name), ("System.StageDisplayName", stage.display),
            ("System.PhaseDisplayName", job.display), ("System.JobName", leg_name or job.name),
            # System.JobId: "a unique identifier for a single attempt of a single job" (variables docs): a GUID
            ("System.JobId", str(uuid.uuid5(uuid.NAMESPACE_URL, f"mlops-ci:{self.run_id}/{path}"))),
            ("System.JobDisplayName", display), ("Agent.JobName", display if leg_name else job.name),
            ("System.PhaseName", job.name), ("Agent.JobStatus", str(Result.SUCCEEDED)),
            ("System.JobPositionInPhase", leg.get("System.JobPositionInPhase", "1")),
            ("System.TotalJobsInPhase", leg.get("System.TotalJobsInPhase", "1")),
            *((("Environment.Name", job.environment), ("Environment.ResourceName", job.environment_resource),
               ("Strategy.Name", "runOnce")) if job.environment else ()))})
        if leg_name:
            job = replace(job, display=display)
            job.leg = leg_name
        if job.agentless:  # an agentless job: no agent, no sources (Azure gives a server job no checkout)
            checkouts, project_root = {}, self.source_dir
        else:
            sources.prepare_directories(variables, job.workspace_clean)
            checkouts, project_root = self._sources(job, variables)
        variables = expand_nested(variables)
        for var in variables.values():
            if var.secret:
                self.masker.add(var.value)
        deadline = started + job.timeout_minutes * 60 if job.timeout_minutes else float("inf")  # 0: no limit
        workspace = Path(variables["Pipeline.Workspace"].value)
        self.steps.start_job(checkouts, self.platform(project_root, workspace) if self.platform else {})
        results: list[str] = []
        timed_out = self.job_canceled = False
        cancels = self.cancels
        try:
            done = self.state.setdefault("steps", {})  # an agentless job's finished steps, for its resume
            for index, step in enumerate(job.steps):
                step_path = f"{path}/{index:02d}"
                if step_path in done:
                    results.append(done[step_path])
                    continue
                if not timed_out and not job.agentless and time.time() >= deadline:
                    # the job ran past timeoutInMinutes: Azure cancels it ("how long to run the job before
                    # automatically cancelling", phases.md "Timeouts"). The agent (StepsRunner.cs) then sets the job's
                    # result and Agent.JobStatus to Canceled and runs only the steps whose condition still holds
                    # (always(), canceled()), for at most cancelTimeoutInMinutes.
                    timed_out = self.job_canceled = True
                    deadline = time.time() + job.cancel_timeout_minutes * 60
                if self.cancels != cancels:  # the run was canceled while this job ran: the job is canceled
                    self.job_canceled = True
                ran = [r for r in results if r != Result.SKIPPED]  # Agent.JobStatus: the job's result so far
                status = Result.CANCELED if self.job_canceled else (planner.worst(ran) if ran else Result.SUCCEEDED)
                variables["Agent.JobStatus"] = Var(str(status), readonly=True, literal=True)
                result = self.steps.run(stage, job, step, step_path, variables, results, deadline)
                if result == WAITING:  # a ManualValidation: the run waits for its decision (validation.py)
                    self.record(path, "job", status="waiting", detail="waiting for manual validation")
                    self.save()
                    return WAITING
                if job.agentless:
                    done[step_path] = str(result)
                    self.save()
                results.append(result)
                if result == Result.CANCELED and not timed_out and not job.agentless and time.time() >= deadline:
                    timed_out = self.job_canceled = True  # the job's limit ended this step: the job is canceled
                    deadline = time.time() + job.cancel_timeout_minutes * 60
            ran = [r for r in results if r != Result.SKIPPED]
            self.steps.post_job(planner.worst(ran).ok if ran else True)
        finally:
            self.steps.end_job()
        ran = [r for r in results if r != Result.SKIPPED]
        result = planner.worst(ran) if ran else Result.SUCCEEDED
        if timed_out or self.job_canceled or Result.CANCELED in ran:  # the agent's jobContext.Result
            result = Result.CANCELED
        self.job_canceled = False
        if result == Result.FAILED and job.continue_on_error:
            result = Result.SUCCEEDED_WITH_ISSUES
        self.record(path, "job", status="completed", result=result, finished=time.time())
        return result

    def _sources(self, job: Job, variables: dict[str, Var]) -> tuple[dict[str, Path], Path]:
        """Make the job's sources (sources.py): a job that checks out self gets a clean copy of the run's commit
        (and snapshot) in $(Pipeline.Workspace)/s, or in `path:` (relative to $(Pipeline.Workspace); the agent
        then points Build.SourcesDirectory, Build.Repository.LocalPath and System.DefaultWorkingDirectory there:
        Agent.Worker/PluginInternalCommandExtension.cs); a job that checks out nothing (`checkout: none`, a
        deployment job without a checkout step: steps-checkout.md) an empty s/; a job that checks out other
        repositories clones each at its step (_checkouts). Returns (checkout value -> folder, for checkouts made
        at their step; the project root `mlops` acts on in the job's steps: its copy of self, or for a job
        without one the folder the run was queued from)."""
        values = [str(step["checkout"]) for step in job.steps if isinstance(step, dict) and "checkout" in step]
        workspace = Path(variables["Pipeline.Workspace"].value)
        self.steps.prepared = ""
        prefix = self.checkout.get("prefix", "")
        if any(value not in ("self", "none") for value in values):
            targets = self._checkouts(job, variables)
            return targets, (targets["self"] / prefix if "self" in targets else self.source_dir)
        if not job.checkout or ("self" not in values and "none" in values):
            sources.empty(workspace / "s")
            return {}, self.source_dir
        step = next((s for s in job.steps if isinstance(s, dict) and str(s.get("checkout")) == "self"), {})
        target = workspace / "s"
        if step.get("path"):
            target = Path(os.path.normpath(workspace / macros.expand(str(step["path"]), variables)))
            if target != workspace and workspace not in target.parents:
                raise EngineError(f"job {job.name}: checkout path {step['path']} is outside $(Pipeline.Workspace) "
                                  "(the agent refuses it too: a path is relative to $(Pipeline.Workspace))")
            sources.empty(workspace / "s")
            for name in ("Build.SourcesDirectory", "System.DefaultWorkingDirectory", "Build.Repository.LocalPath"):
                variables[name] = Var(str(target), readonly=True, literal=True)
        try:
            self.steps.prepared = sources.prepare(self.checkout, self.source_dir, target, sources.Options.of(step))
        except sources.SourcesError as exc:
            raise EngineError(f"job {job.name}: {exc}") from None
        return {}, target / prefix

    def _checkouts(self, job: Job, variables: dict[str, Var]) -> dict[str, Path]:
        """Where each checkout step of a job that checks out another repository puts its files (the agent's
        layout, Agent.Sdk/Util/RepositoryUtil.cs GetCloneDirectory): one checkout -> $(Pipeline.Workspace)/s,
        several -> s/<repository name> each, self included; `path:` is relative to $(Pipeline.Workspace).
        The job's Build.SourcesDirectory and System.DefaultWorkingDirectory become s. A job that checks out
        only self gets its sources from _sources."""
        from ml_service.ci.model import repositories

        values = [step for step in job.steps if isinstance(step, dict) and "checkout" in step
                  and str(step["checkout"]) != "none"]
        if not any(str(step["checkout"]) != "self" for step in values):
            return {}
        workspace = Path(variables["Pipeline.Workspace"].value)
        sources = workspace / "s"
        if sources.exists():
            shutil.rmtree(sources)
        sources.mkdir(parents=True)
        declared = repositories.declared(self.document)
        targets: dict[str, Path] = {}
        self_name = variables["Build.Repository.Name"].value
        for step in values:
            value = str(step["checkout"])
            if step.get("path"):
                target = workspace / str(step["path"])
            elif len(values) == 1:
                target = sources
            elif value == "self":
                target = sources / self_name
            else:
                target = sources / repositories.resolve(value, declared, self.repositories, "?").folder
            targets[value] = target
        for name in ("Build.SourcesDirectory", "System.DefaultWorkingDirectory"):
            variables[name] = Var(str(sources), readonly=True, literal=True)
        if "self" in targets:
            variables["Build.Repository.LocalPath"] = Var(str(targets["self"]), readonly=True, literal=True)
        return targets

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
