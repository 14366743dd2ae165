"""Execute one run of a compiled pipeline, with Azure's meaning for what it uses.

Stages and jobs follow the plan (planner.py); each step is a script process (process.py), a
local task (tasks.py), or a checkout. Variables are exported to steps the way the agent does
(upper case, dots to underscores; secrets only through env:), $(macros) are expanded, ##vso
logging commands set variables and outputs, and secret values never reach a log (masking.py).
A deployment job on an environment with an approval check stops the run in state "waiting";
`mlops ci approve` resumes it from the store, no process having to stay alive meanwhile.
"""
from __future__ import annotations

import os
import re
import signal
import sys
import time
from pathlib import Path
from typing import Callable

from ml_service.ci import expressions as ex
from ml_service.ci import planner, process
from ml_service.ci.masking import Masker
from ml_service.ci.model import STEP_KINDS, WAITING, EngineError, Job, Outcome, Result, Stage, Var, minutes, \
    normalize
from ml_service.ci.store import Store
from ml_service.ci.tasks import TaskError, run_task
from ml_service.processes import kill_group

MACRO = re.compile(r"\$\(([A-Za-z_][\w.\-]*)\)")
# What would make a value run as code, or break out of quotes, when spliced into a bash script.
SHELL_SYNTAX = re.compile(r"[`$;&|<>\"'\\\n\r]")
MAX_NESTING = 50
RUNTIME = re.compile(r"^\s*\$\[(.*)\]\s*$", re.DOTALL)
SUMMARY_LIMIT = 4000  # characters of one uploaded summary


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
        self.prepended: list[str] = []
        self.watchdog = None
        self.job_groups: list[int] = []  # process groups of this job's steps

    # --- persistence ----------------------------------------------------------------------

    def _save(self) -> None:
        self.store.update_run(self.run_id, state=self.state)

    def _record(self, path: str, kind: str, **fields) -> None:
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
            self._save()
        if waiting:
            self._save()
            return Outcome("waiting", "", waiting)
        results = [self.state["results"][s.name] for s in self.stages if s.name in self.state["results"]]
        overall = planner.worst(results)
        if self.canceled:
            overall = Result.CANCELED
        return Outcome("completed", str(Result.SUCCEEDED if overall == Result.SKIPPED else overall))

    def _on_cancel(self, signum, frame):
        self.canceled = True
        raise KeyboardInterrupt("canceled")

    def _condition(self, condition: str, dep_results: list[str], roots: dict, where: str) -> bool:
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

    def _secret_reference(self, key: str, value: str, variables: dict[str, Var]) -> dict:
        """What runs.db keeps of a secret output: where to find it, never the value."""
        for group_name in getattr(self.groups, "used", ()):
            for name, var in self.groups[group_name].items():
                if var.secret and var.value == value:
                    return {"secret": f"group:{group_name}/{name}"}
        self.vault[key] = value
        self.store.save_secrets(self.run_id, self.vault)
        return {"secret": "vault"}

    def _stage(self, stage: Stage) -> str:
        path = stage.name
        dep_results = [self.state["results"].get(d, Result.SKIPPED) for d in stage.depends_on]
        roots = {"variables": self._values(self.variables), "dependencies": self._stage_dependencies(stage.depends_on)}
        if not self._condition(stage.condition, dep_results, roots, f"stage {stage.name}"):
            self._record(path, "stage", name=stage.name, display=stage.display, status="completed",
                         result=Result.SKIPPED)
            for job in stage.jobs:
                self._record(f"{path}/{job.name}", "job", name=job.name, display=job.display, status="completed",
                             result=Result.SKIPPED)
            return Result.SKIPPED
        self._record(path, "stage", name=stage.name, display=stage.display, status="running", started=time.time())
        variables = dict(self.variables)
        variables.update(self._declare(stage.variables, variables, {}))
        job_results: dict[str, str] = {k.split("/", 1)[1]: v for k, v in self.state["results"].items()
                                       if k.startswith(stage.name + "/")}
        for job in planner.ordered(stage.jobs):
            if job.name in job_results:
                continue
            result = self._job(stage, job, variables, job_results)
            if result == WAITING:
                self._record(path, "stage", status="waiting")
                return WAITING
            job_results[job.name] = str(result)
            self.state["results"][f"{stage.name}/{job.name}"] = str(result)
            self._save()
        result = planner.worst(job_results.values())
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
        roots = {"variables": self._values(stage_vars), **self._job_roots(stage, job_results)}
        if not self._condition(job.condition, dep_results, roots, f"job {path}"):
            self._record(path, "job", name=job.name, display=job.display, status="completed", result=Result.SKIPPED)
            return Result.SKIPPED
        if job.environment:
            decision = self.approval_check(job.environment) and self._approval(stage, job)
            if decision == "waiting":
                self._record(path, "job", name=job.name, display=job.display, status="waiting",
                             detail=f"waiting for approval on environment {job.environment}")
                return WAITING
            if decision == "rejected":
                self._record(path, "job", name=job.name, display=job.display, status="completed",
                             result=Result.FAILED, detail=f"rejected on environment {job.environment}")
                return Result.FAILED
        started = time.time()
        self._record(path, "job", name=job.name, display=job.display, status="running", started=started)
        variables = dict(stage_vars)
        variables.update(self._declare(job.variables, variables, {k: v for k, v in roots.items() if k != "variables"}))
        variables.update({name: Var(value, readonly=True, literal=True) for name, value in (
            ("System.StageName", stage.name), ("System.JobName", job.name), ("System.JobDisplayName", job.display),
            ("Agent.JobName", job.name), *((("Environment.Name", job.environment),) if job.environment else ()))})
        variables = expand_nested(variables)
        for var in variables.values():
            if var.secret:
                self.masker.add(var.value)
        deadline = started + job.timeout_minutes * 60
        self.prepended = []  # task.prependpath lasts for the rest of the job
        results: list[str] = []
        try:
            for index, step in enumerate(job.steps):
                step_path = f"{path}/{index:02d}"
                result = self._step(stage, job, step, step_path, variables, results, deadline)
                results.append(result)
        finally:
            self._end_job_processes()
        ran = [r for r in results if r != Result.SKIPPED]
        result = planner.worst(ran) if ran else Result.SUCCEEDED
        if result == Result.FAILED and job.continue_on_error:
            result = Result.SUCCEEDED_WITH_ISSUES
        self._record(path, "job", status="completed", result=result, finished=time.time())
        return result

    def _keep_group(self, pgid: int) -> None:
        """A step ended: its group is watched until the job ends if something still runs in it (a group
        id stays taken while it has members); an empty group is released at once."""
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            if self.watchdog is not None:
                self.watchdog.release(pgid)
            return
        except PermissionError:
            pass
        self.job_groups.append(pgid)

    def _end_job_processes(self) -> None:
        """Kill what the job's steps left running (the agent ends a job's orphan processes too)."""
        for pgid in self.job_groups:
            kill_group(pgid)
            if self.watchdog is not None:
                self.watchdog.release(pgid)
        self.job_groups = []

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

    def _step(self, stage, job, step, path, variables, previous, deadline) -> Result:
        if not isinstance(step, dict):
            raise EngineError(f"{path}: a step must be a mapping")
        kind = next((k for k in STEP_KINDS if k in step), None)
        if kind is None:
            raise EngineError(f"{path}: unknown step {sorted(step)}")
        display = self._expand(str(step.get("displayName") or self._default_display(kind, step)), variables)
        name = str(step.get("name") or "")
        self._record(path, "step", name=name or display, display=display, status="pending")
        if not ex.as_bool(step.get("enabled", True)):
            self._record(path, "step", status="completed", result=Result.SKIPPED, detail="disabled")
            return Result.SKIPPED
        roots = {"variables": self._values(variables)}
        if not self._condition(str(step.get("condition") or "succeeded()"),
                               [r for r in previous if r != Result.SKIPPED], roots, f"step {display}"):
            self._record(path, "step", status="completed", result=Result.SKIPPED)
            return Result.SKIPPED
        log_path = self.store.log_path(self.run_id, path.replace("/", "."))
        attempts = 1 + int(step.get("retryCountOnTaskFailure") or 0)
        started = time.time()
        self._record(path, "step", status="running", started=started, log=str(log_path))
        result, detail = Result.FAILED, ""
        for attempt in range(1, attempts + 1):
            if attempt > 1:
                with open(log_path, "a") as log:
                    log.write(f"\n--- retry {attempt - 1} of {attempts - 1} after failure: {detail}\n")
            result, detail = self._execute(kind, step, name, stage, job, variables, log_path, deadline)
            if result != Result.FAILED or self.canceled:
                break
        if result == Result.FAILED and ex.as_bool(step.get("continueOnError", False)):
            result, detail = Result.SUCCEEDED_WITH_ISSUES, f"continued on error: {detail}"
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

    def _expand_script(self, text: str, variables: dict[str, Var]) -> tuple[str, list[str]]:
        """Macros expanded in a script's text, and the variables whose values would run as code there."""
        lowered = {k.lower(): (k, v.value) for k, v in variables.items()}
        spliced: list[str] = []

        def substitute(match) -> str:
            found = lowered.get(match.group(1).lower())
            if found is None:
                return match.group(0)
            if SHELL_SYNTAX.search(found[1]) and found[0] not in spliced:
                spliced.append(found[0])
            return found[1]
        return MACRO.sub(substitute, text), spliced

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

    def _execute(self, kind, step, name, stage, job, variables, log_path, deadline) -> tuple[Result, str]:
        default_dir = variables["System.DefaultWorkingDirectory"].value
        workdir = Path(self._expand(str(step.get("workingDirectory") or default_dir), variables))
        if kind == "checkout":
            with open(log_path, "a") as log:
                log.write(f"checkout {step['checkout']}: sources are at {variables['Build.SourcesDirectory'].value}\n")
            return Result.SUCCEEDED, ""
        if kind in ("pwsh", "powershell"):
            return Result.FAILED, f"step '{kind}' is not supported locally (no PowerShell on this agent)"
        if kind in ("task", "download", "publish"):
            return self._task(kind, step, variables, log_path)
        script, spliced = self._expand_script(str(step[kind]), variables)
        if spliced:
            message = (f"refused: the value of {', '.join(spliced)} holds shell syntax ($(...), `, ;, |, &, <, >, "
                       "quotes, backslash or a newline) and would run as code where the script text says $(name); "
                       "pass it through env: (env: {NAME: $(name)}, then \"$NAME\" in the script)")
            with open(log_path, "a") as log:
                log.write(f"##[error]{message}\n")
            return Result.FAILED, message
        if not workdir.is_dir():
            return Result.FAILED, f"workingDirectory {workdir} does not exist"
        temp = Path(variables["Agent.TempDirectory"].value)
        temp.mkdir(parents=True, exist_ok=True)
        script_path = temp / f"step-{os.getpid()}-{time.monotonic_ns()}.sh"
        descriptor = os.open(script_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # it may hold secrets
        with os.fdopen(descriptor, "w") as file:
            file.write(script + "\n")
        try:
            return self._run_script(kind, step, name, stage, job, variables, log_path, deadline, script_path, workdir)
        finally:
            script_path.unlink(missing_ok=True)  # deleted when the step ends, whatever the end

    def _run_script(self, kind, step, name, stage, job, variables, log_path, deadline, script_path,
                    workdir) -> tuple[Result, str]:
        timeout = minutes(step.get("timeoutInMinutes"), f"step {name or kind}", 0.0) * 60 or None
        remaining = deadline - time.time()
        if timeout is None or remaining < timeout:
            timeout, job_limit = remaining, True
        else:
            job_limit = False
        issues: list[str] = []
        complete: list[Result] = []

        def on_command(command: process.Command) -> None:
            verdict = self._vso(command, name, stage, job, variables, issues)
            if verdict:
                complete.append(verdict)

        ended = process.run(["bash", "--noprofile", "--norc", str(script_path)], self._env(step, variables),
                            workdir, log_path, timeout, self.masker, on_command, self.watchdog)
        if ended.pid:
            self._keep_group(ended.pid)
        if ended.timed_out:
            which = "the job's timeoutInMinutes" if job_limit else "timeoutInMinutes"
            with open(log_path, "a") as log:
                log.write(f"##[error]the step exceeded {which}; its process tree was killed\n")
            return Result.FAILED, f"timed out after {timeout / 60:.2f} minutes"
        if complete:
            return complete[-1], "; ".join(issues)
        issues += ended.issues
        if ended.code != 0:
            return Result.FAILED, f"exited with code {ended.code}" + (f"; {'; '.join(issues)}" if issues else "")
        return Result.SUCCEEDED, "; ".join(issues)

    def _task(self, kind, step, variables, log_path) -> tuple[Result, str]:
        inputs = {k: self._expand(ex.to_str(v), variables) for k, v in (step.get("inputs") or {}).items()}
        expanded = {k: self._expand(v, variables) if isinstance(v, str) else v for k, v in step.items()}
        try:
            message = run_task(kind, expanded, inputs, self._task_context(variables))
        except TaskError as exc:
            with open(log_path, "a") as log:
                log.write(self.masker(f"##[error]{exc}\n"))
            return Result.FAILED, str(exc)
        with open(log_path, "a") as log:
            log.write(self.masker(message + "\n"))
        return Result.SUCCEEDED, ""

    def _task_context(self, variables: dict[str, Var]) -> dict:
        return {"store": self.store, "run_id": self.run_id, "variables": self._values(variables),
                "resources": self.store.get_run(self.run_id).resources}

    def _vso(self, command: process.Command, name, stage, job, variables, issues) -> Result | None:
        fields, message = command.fields, command.message
        if command.area == "task.setvariable":
            var_name = fields.get("variable", "")
            # a value holding a secret (in any form) stays secret, whatever the command says
            secret = fields.get("issecret", "").lower() == "true" or self.masker(message) != message
            if secret:
                self.masker.add(message)
            existing = variables.get(var_name)
            if existing is not None and existing.readonly:
                issues.append(f"variable {var_name} is read-only")
                return None
            var = Var(message, secret=secret, readonly=fields.get("isreadonly", "").lower() == "true", literal=True)
            if fields.get("isoutput", "").lower() == "true":
                if not name:
                    issues.append(f"output variable {var_name} set by a step without a name")
                key = f"{name}.{var_name}"
                variables[key] = var
                keys = [f"{stage.name}/{job.name}.{key}"]
                if job.environment:  # deployment jobs expose <job>.<step>.<var> too (runOnce lifecycle)
                    keys.append(f"{stage.name}/{job.name}.{job.name}.{key}")
                for output in keys:
                    self.state["outputs"][output] = self._secret_reference(output, message, variables) if secret \
                        else message
                self._save()
            else:
                variables[var_name] = var
        elif command.area == "task.prependpath":
            self.prepended.append(message)
        elif command.area == "task.logissue":
            issues.append(f"{fields.get('type', 'warning')}: {message}")
        elif command.area == "task.complete":
            return {"succeeded": Result.SUCCEEDED, "succeededwithissues": Result.SUCCEEDED_WITH_ISSUES,
                    "failed": Result.FAILED}.get(fields.get("result", "").lower())
        elif command.area == "task.uploadsummary":  # a markdown summary attached to the run (shown when it ends)
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

        def substitute(match) -> str:
            ref = lowered.get(match.group(1).lower())
            return value_of(ref, (*stack, name)) if ref else match.group(0)
        done[name] = MACRO.sub(substitute, var.value)
        return done[name]
    return {name: var if var.literal else Var(value_of(name, ()), var.secret, var.readonly, var.literal)
            for name, var in variables.items()}
