"""One step of a job, as the agent runs it: a script (bash) in a process of its own, a local task,
or a checkout, each a typed step made by step_factory.py. Macros are expanded (macros.py), a value
that would run as code refuses the step, the script file is private (0600) and deleted when the step
ends, ##vso logging commands set variables and outputs (a secret output is stored as a reference),
retries and continueOnError apply, and what a job's steps leave running ends with the job.
"""
from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

from ml_service.ci.model import expressions as ex
from ml_service.ci.model.pipeline import Result, Var, minutes
from ml_service.ci.runner import macros, process, reaper, sources
from ml_service.ci.runner import tasks
from ml_service.ci.runner.step_factory import (CheckoutStep, DownloadStep, PublishStep, ShellStep, Step, TaskStep,
                                               new_step)
from ml_service.ci.runner.commands import COMPLETE_RESULTS, Restrictions, merge_results
from ml_service.ci.runner.tasks import TaskError, run_task
from ml_service.processes import kill_group

SUMMARY_LIMIT = 4000  # characters of one uploaded summary


class Steps:
    """Runs the steps of the engine's jobs (the engine holds the run's state, store and masker)."""

    def __init__(self, engine):
        self.engine = engine
        self.prepended: list[str] = []  # task.prependpath: for the rest of the job
        self.checkouts: dict = {}  # checkout value -> folder, in a job that checks out another repository
        self.platform: dict[str, str] = {}  # MLOPS_ROOT and the workspace's paths for `mlops` in a step
        self.prepared = ""  # what the job's checkout of self holds (sources.prepare), said by its checkout step
        self.post_jobs: list = []
        self.job_groups: list[int] = []  # process groups of this job's steps

    def start_job(self, checkouts: dict | None = None, platform: dict | None = None) -> None:
        """A job begins: nothing prepended to PATH yet; checkouts: checkout value -> its folder (a job that
        checks out another repository, executor._checkouts); platform: what `mlops` in its steps needs
        (sources.platform_environment)."""
        self.prepended = []
        self.checkouts = checkouts or {}
        self.platform = platform or {}
        self.job_token = reaper.new_token()  # in every step's environment: what carries it ends with the job
        self.post_jobs = []  # what tasks do when the job ends (Cache@2 saves after a miss), given the job's success

    def post_job(self, ok: bool) -> list[str]:
        """Run the job's post-job actions (each is told whether the job succeeded); their errors, as text."""
        errors = []
        for action in self.post_jobs:
            try:
                action(ok)
            except OSError as exc:
                errors.append(f"post-job: {exc}")
        self.post_jobs = []
        return errors

    def secret_reference(self, key: str, value: str, variables: dict[str, Var]) -> dict:
        """What runs.db keeps of a secret output: where to find it, never the value."""
        for group_name in getattr(self.engine.groups, "used", ()):
            for name, var in self.engine.groups[group_name].items():
                if var.secret and var.value == value:
                    return {"secret": f"group:{group_name}/{name}"}
        self.engine.vault[key] = value
        self.engine.store.save_secrets(self.engine.run_id, self.engine.vault)
        return {"secret": "vault"}

    def keep_group(self, pgid: int) -> None:
        """A step ended: its group is watched until the job ends if something still runs in it (a group
        id stays taken while it has members); an empty group is released at once."""
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            if self.engine.watchdog is not None:
                self.engine.watchdog.release(pgid)
            return
        except PermissionError:
            pass
        self.job_groups.append(pgid)

    def end_job(self) -> None:
        """Kill what the job's steps left running (the agent ends a job's orphan processes too)."""
        groups = set(self.job_groups)
        for pgid in self.job_groups:
            kill_group(pgid)
            if self.engine.watchdog is not None:
                self.engine.watchdog.release(pgid)
        self.job_groups = []
        if getattr(self, "job_token", ""):  # daemons that left the group (setsid, double fork)
            reaper.kill_job(self.job_token)
        if groups:
            reaper.reap_orphans(groups, wait=2.0)

    def run(self, stage, job, raw, path, variables, previous, deadline) -> Result:
        """Run one step (its condition, retries and continueOnError applied); its result."""
        step = new_step(raw, path)
        display = macros.expand(step.display_name, variables)
        name = step.name
        self.engine.record(path, "step", name=name or display, display=display, status="pending")
        if not step.enabled:
            self.engine.record(path, "step", status="completed", result=Result.SKIPPED, detail="disabled")
            return Result.SKIPPED
        roots = {"variables": self.engine.values(variables)}
        if not self.engine.condition(step.condition,
                                     [r for r in previous if r != Result.SKIPPED], roots, f"step {display}",
                                     step=True):
            self.engine.record(path, "step", status="completed", result=Result.SKIPPED)
            return Result.SKIPPED
        log_path = self.engine.store.log_path(self.engine.run_id, path.replace("/", "."))
        validations = (tasks.manual_validation, tasks.manual_validation_v0)
        if isinstance(step, TaskStep) and tasks.module(step.task) in validations:
            from ml_service.ci.runner import validation

            return validation.step(self.engine, stage, job, step, path, variables, log_path)
        attempts = step.attempts
        started = time.time()
        self.engine.record(path, "step", status="running", started=started, log=str(log_path))
        result, detail = Result.FAILED, ""
        cancels = self.engine.cancels
        for attempt in range(1, attempts + 1):
            if attempt > 1:
                with open(log_path, "a") as log:
                    log.write(f"\n--- retry {attempt - 1} of {attempts - 1} after failure: {detail}\n")
            result, detail = self._execute(step, stage, job, variables, log_path, deadline)
            if result != Result.FAILED or self.engine.canceled:
                break
        if self.engine.cancels != cancels and result == Result.FAILED:  # the run's cancel ended it
            result, detail = Result.CANCELED, "canceled"
        if result == Result.FAILED and step.continue_on_error:
            result, detail = Result.SUCCEEDED_WITH_ISSUES, f"continued on error: {detail}"
        self.engine.record(path, "step", status="completed", result=result, finished=time.time(), detail=detail[:4000])
        return result

    def _checkout(self, value: str, variables: dict[str, Var], log_path, raw: dict | None = None
                  ) -> tuple[Result, str]:
        """checkout: self | none | <repository resource> | git://project/repo@ref (repositories.py), with its
        fetchDepth, submodules and lfs (sources.Options)."""
        from ml_service.ci.model import repositories

        target = getattr(self, "checkouts", {}).get(value)
        options = sources.Options.of(raw or {})
        try:
            if target is None and value == "self" and self.prepared:  # made when the job started (executor)
                message = self.prepared
            elif target is None:  # none
                message = f"checkout {value}: nothing checked out; {variables['Build.SourcesDirectory'].value} is empty"
            elif value == "self":
                message = sources.prepare(self.engine.checkout, self.engine.source_dir, target, options)
            else:
                repo = repositories.resolve(value, repositories.declared(self.engine.document),
                                            self.engine.repositories, value)
                if options.depth:
                    sources.shallow_clone(repo.source, repo.ref, target, options.depth, f"checkout {value}")
                else:
                    repositories.clone(repo, target)
                extra = sources.finish(target, options, f"checkout {value}")
                message = f"checkout {value}: {repo.source} at {repo.ref} into {target}" + \
                    "".join(f"; {e}" for e in extra)
        except (repositories.RepositoryError, sources.SourcesError) as exc:
            with open(log_path, "a") as log:
                log.write(f"##[error]{exc}\n")
            return Result.FAILED, str(exc)
        with open(log_path, "a") as log:
            log.write(message + "\n")
        return Result.SUCCEEDED, ""

    def _execute(self, step: Step, stage, job, variables, log_path, deadline) -> tuple[Result, str]:
        default_dir = variables["System.DefaultWorkingDirectory"].value
        name = step.name
        stop = self.engine.plan.step_stops.get(id(step.raw))
        if stop:  # named in the run's plan before it started (preflight.py)
            with open(log_path, "a") as log:
                log.write(f"##[error]{stop}\n")
            return Result.FAILED, stop
        workdir = Path(macros.expand(str(step.raw.get("workingDirectory") or default_dir), variables))
        if isinstance(step, CheckoutStep):
            return self._checkout(step.repository, variables, log_path, step.raw)
        if isinstance(step, ShellStep):
            return Result.FAILED, step.refusal
        if isinstance(step, TaskStep):
            found = tasks.module(step.task)
            if found is not None and found.KIND == "script":  # Bash@3, CmdLine@2, PythonScript@0: a script step
                try:
                    as_script = found.script(step.inputs)
                except TaskError as exc:
                    return Result.FAILED, str(exc)
                env = {**(step.raw.get("env") or {}), **as_script.pop("env", {})}
                step = new_step({**{k: v for k, v in step.raw.items() if k not in ("task", "inputs")}, **as_script,
                                 "env": env}, step.path)  # a ScriptStep
                workdir = Path(macros.expand(str(step.raw.get("workingDirectory") or default_dir), variables))
                if not workdir.is_absolute():
                    workdir = Path(default_dir) / workdir
        if isinstance(step, (TaskStep, DownloadStep, PublishStep)):
            own = minutes(step.raw.get("timeoutInMinutes"), f"step {name or step.kind}", 0.0) * 60
            return self._task(step.kind, step.raw, name, stage, job, variables, log_path,
                              min(deadline, time.time() + own) if own else deadline)
        script, spliced = macros.expand_script(step.script, variables)
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
            return self._run_script(step.kind, step.raw, name, stage, job, variables, log_path, deadline, script_path,
                                    workdir)
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
        if timeout == float("inf"):  # timeoutInMinutes 0 on the job and none on the step: no limit, as on Azure
            timeout = None
        issues: list[str] = []
        complete: list[Result] = []
        restrictions = Restrictions.of(step.get("target"))

        def on_command(command: process.Command) -> None:
            if not restrictions.allows(command, issues):
                return
            verdict = self._vso(command, name, stage, job, variables, issues, restrictions)
            if verdict:
                complete.append(verdict)

        env = macros.step_environment(step, variables, self.prepended, self.platform)
        env[reaper.TOKEN_VARIABLE] = getattr(self, "job_token", "") or reaper.new_token()
        ended = process.run(["bash", "--noprofile", "--norc", str(script_path)], env, workdir, log_path, timeout,
                            self.engine.masker, on_command, self.engine.watchdog,
                            fail_on_stderr=ex.as_bool(step.get("failOnStderr", False)),
                            log_max_bytes=self.engine.log_max_bytes)
        if ended.pid:
            reaper.reap_orphans({ended.pid}, wait=2.0 if ended.timed_out else 0.0)  # its killed or finished orphans
            self.keep_group(ended.pid)
        if ended.timed_out:
            which = "the job's timeoutInMinutes" if job_limit else "timeoutInMinutes"
            with open(log_path, "a") as log:
                log.write(f"##[error]the step exceeded {which}; its process tree was killed\n")
            # the step's own limit fails it; the job's limit cancels the job, and the step with it (StepsRunner.cs:
            # OperationCanceledException from the job's token -> TaskResult.Canceled)
            return (Result.CANCELED if job_limit else Result.FAILED), f"timed out after {timeout / 60:.2f} minutes"
        issues += ended.issues
        # the step's result merges what task.complete said with how the process ended, the worse winning (the
        # agent's TaskResultUtil.MergeTaskResults: task.complete result=Succeeded does not undo an exit code 1)
        if ended.code != 0:
            return Result.FAILED, f"exited with code {ended.code}" + (f"; {'; '.join(issues)}" if issues else "")
        result = Result.SUCCEEDED
        for said in complete:
            result = merge_results(result, said)
        return result, "; ".join(issues)

    def _task(self, kind, step, name, stage, job, variables, log_path, deadline=float("inf")) -> tuple[Result, str]:
        inputs = {k: macros.expand(ex.to_str(v), variables) for k, v in (step.get("inputs") or {}).items()}
        expanded = {k: macros.expand(v, variables) if isinstance(v, str) else v for k, v in step.items()}
        issues: list[str] = []
        context = self._task_context(variables)
        default_dir = Path(variables["System.DefaultWorkingDirectory"].value)

        def path(text: str) -> Path:  # a task's path input: macros expanded, relative to the default directory
            expanded_path = Path(macros.expand(str(text), variables))
            return expanded_path if expanded_path.is_absolute() else default_dir / expanded_path

        def set_output(var: str, value: str) -> None:  # a task's output variable, as ##vso setvariable isOutput
            self._vso(process.Command("task.setvariable", {"variable": var, "isoutput": "true"}, value), name, stage,
                      job, variables, issues)
            if not name:
                variables[var] = Var(value, literal=True)

        def set_variable(var: str, value: str) -> None:  # a job variable, as ##vso setvariable
            variables[var] = Var(value, literal=True)
        context.update({"path": path, "expand": lambda text: macros.expand(str(text), variables),
                        "deadline": deadline, "set_output": set_output, "set_variable": set_variable,
                        "prepend_path": self.prepended.append, "post_job": self.post_jobs.append,
                        "path_env": macros.step_environment({}, variables, self.prepended, self.platform).get("PATH")})
        try:
            message = run_task(kind, expanded, inputs, context)
        except TaskError as exc:
            with open(log_path, "a") as log:
                log.write(self.engine.masker(f"##[error]{exc}\n"))
            return Result.FAILED, str(exc)
        with open(log_path, "a") as log:
            log.write(self.engine.masker(message + "\n"))
        return Result.SUCCEEDED, ""

    def _task_context(self, variables: dict[str, Var]) -> dict:
        return {"store": self.engine.store, "run_id": self.engine.run_id, "variables": self.engine.values(variables),
                "mask": self.engine.masker,  # what a task stores passes it (a title may hold a secret)
                "resources": self.engine.store.get_run(self.engine.run_id).resources,
                "definitions": self.engine.definitions, "registries": self.engine.registries}

    def _vso(self, command: process.Command, name, stage, job, variables, issues,
             restrictions: "Restrictions | None" = None) -> Result | None:
        fields, message = command.fields, command.message
        if command.area == "task.setvariable":
            var_name = fields.get("variable", "")
            if not var_name:  # the agent throws MissingVariableName: the command fails the step
                issues.append("error: ##vso[task.setvariable] without a variable name")
                return Result.FAILED
            if restrictions is not None and not restrictions.settable(var_name, issues):
                return None
            # a value holding a secret (in any form) stays secret, whatever the command says
            secret = fields.get("issecret", "").lower() == "true" or self.engine.masker(message) != message
            if secret:
                self.engine.masker.add(message)
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
                leg = getattr(job, "leg", "")  # a leg's outputs: dependencies.<job>.outputs['<leg>.<step>.<var>']
                keys = [f"{stage.name}/{job.name}.{leg + '.' if leg else ''}{key}"]
                if job.environment:  # deployment jobs expose <job>.<step>.<var> too (runOnce lifecycle)
                    keys.append(f"{stage.name}/{job.name}.{job.name}.{key}")
                for output in keys:
                    self.engine.state["outputs"][output] = self.secret_reference(output, message, variables) if secret \
                        else message
                self.engine.save()
            else:
                variables[var_name] = var
        elif command.area == "task.prependpath":
            if restrictions is not None and not restrictions.settable("PATH", issues):
                return None
            if message in self.prepended:  # the agent moves a path prepended again to the front
                self.prepended.remove(message)
            self.prepended.append(message)
        elif command.area == "task.logissue":
            issues.append(f"{fields.get('type', 'warning')}: {message}")
        elif command.area == "task.complete":
            said = COMPLETE_RESULTS.get(fields.get("result", ""))
            if said is None:  # the agent: Enum.TryParse fails -> InvalidCommandResult, the command fails the step
                issues.append(f"error: ##vso[task.complete] result={fields.get('result', '')!r} is not one of "
                              f"{', '.join(COMPLETE_RESULTS)} (the names are case-sensitive)")
                return Result.FAILED
            return said
        elif command.area in ("task.uploadsummary", "build.uploadsummary"):  # a markdown summary of the run
            self._attach_summary(message, issues)
        elif command.area == "artifact.upload":
            return self._upload_artifact(fields, message, variables, issues)
        elif command.area == "task.setsecret":  # mask the value from here on (logging-commands.md)
            self.engine.masker.add(message)
        elif command.area == "build.updatebuildnumber":
            variables["Build.BuildNumber"] = Var(message, readonly=True, literal=True)
        elif command.area == "build.addbuildtag":  # the run's tags: what resources.pipelines tags filters read
            tag = message.strip()
            if not tag:  # the agent: BuildTagRequired, the command fails the step
                issues.append("error: ##vso[build.addbuildtag] needs a tag")
                return Result.FAILED
            tags = self.engine.state.setdefault("tags", [])
            if tag not in tags:
                tags.append(tag)
                self.engine.save()
        elif command.area in ("task.setprogress", "task.setendpoint"):
            pass  # only shown in Azure's web UI (a progress bar, an endpoint): nothing to do here
        else:  # never silently: the log says this command had no effect here
            issues.append(f"warning: logging command ##vso[{command.area}] has no local meaning and was ignored")
        return None

    def _upload_artifact(self, fields: dict, message: str, variables, issues: list[str]) -> Result | None:
        """##vso[artifact.upload artifactname=NAME;containerfolder=F]PATH: the file or folder's files become (part
        of) the run's artifact NAME, which later jobs download (the agent's ArtifactUploadCommand: the name is
        required, a missing path fails the step, an empty folder is a warning; uploads to one name add up)."""
        name = fields.get("artifactname", "")
        if not name:
            issues.append("error: ##vso[artifact.upload] needs artifactname")
            return Result.FAILED
        source = Path(message.strip())
        if not source.is_absolute():
            source = Path(variables["System.DefaultWorkingDirectory"].value) / source
        if not source.exists():
            issues.append(f"error: ##vso[artifact.upload]: {source} does not exist")
            return Result.FAILED
        if source.is_dir() and not any(p.is_file() for p in source.rglob("*")):
            issues.append(f"warning: ##vso[artifact.upload]: {source} is empty; artifact {name} not uploaded")
            return None
        target = self.engine.store.artifacts_dir(self.engine.run_id) / name
        target.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, dirs_exist_ok=True)
        else:
            shutil.copy(source, target / source.name)
        return None

    def _attach_summary(self, path: str, issues: list[str]) -> None:
        try:
            text = Path(path).read_text(errors="replace")[:SUMMARY_LIMIT].strip()
        except OSError as exc:
            issues.append(f"warning: summary {path} cannot be read: {exc.strerror}")
            return
        if text:
            self.engine.state.setdefault("summaries", []).append(self.engine.masker(text))
            self.engine.save()
