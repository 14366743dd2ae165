"""Queue, run, resume, cancel and chain pipeline runs (the local agent and server together); the approval
decision is approvals.py's."""
from __future__ import annotations

import functools
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable

from ml_service.ci.model import schema, triggers
from ml_service.ci.model.pipeline import EngineError, Var, definition_id
from ml_service.ci.model.repositories import RepositoryError, Templates
from ml_service.ci.model.template import Compiler, TemplateError
from ml_service.ci.model.variables import VariableError, parse_variables, variable_groups
from ml_service.ci.model.yamlload import YamlError, load_file
from ml_service.ci.runner import preflight, sources
from ml_service.ci.runner.executor import Engine
from ml_service.ci.scaffold import KINDS, PIPELINES_DIR, pipeline_name
from ml_service.ci.server import identity as ident
from ml_service.ci.server.approvals import approval_config, supersede_older
from ml_service.ci.server.errors import CIError
from ml_service.ci.server.store import Store
from ml_service.workspace.gitinfo import branch_and_commit
from ml_service.workspace.owners import owner_tag
from ml_service.config import ConfigError, Settings


def open_store(settings: Settings) -> Store:
    """The run store of this workspace, reconciled (killed runs marked, expired approvals timed out)."""
    store = Store(settings.state_dir / "ci")
    store.reconcile()
    for run_id in store.resumable:  # a ManualValidation timed out: the run goes on (onTimeout) on its own
        resume_detached(settings, run_id)
    store.resumable.clear()
    return store


def resume_detached(settings: Settings, run_id: int):
    """Continue a waiting run in a process of its own, detached (its output in <state>/ci/resume/<run>.log)."""
    logs = settings.state_dir / "ci" / "resume"
    logs.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "MLOPS_ROOT": str(settings.root), "MLOPS_STATE_DIR": str(settings.state_dir)}
    with open(logs / f"{run_id}.log", "ab") as log:
        process = subprocess.Popen([sys.executable, "-m", "ml_service.cli", "ci", "scheduler", "--execute",
                                    str(run_id)], env=env, stdin=subprocess.DEVNULL, stdout=log,
                                   stderr=subprocess.STDOUT, start_new_session=True, cwd=settings.root)
    threading.Thread(target=process.wait, daemon=True).start()  # reaped when it ends: no zombie
    return process


def identity(settings: Settings) -> str:
    """The name someone acts under: MLOPS_USER, else git user.email, else the OS account. A claim,
    not proof: approvals ask for proof (identity.py)."""
    return ident.claimed_name(settings)


def pipeline_files(source_dir: Path) -> dict[str, Path]:
    """Pipeline name (file stem) -> file, for .pipelines/*.yml."""
    folder = Path(source_dir) / PIPELINES_DIR
    return {p.stem: p for p in sorted(folder.glob("*.yml"))}


def pipeline_documents(source_dir: Path, unreadable: list[Path] | None = None):
    """(name, file, document) for each pipeline file that reads as a mapping; the others (unreadable, malformed
    YAML, not a mapping) are left out, and listed in unreadable when it is given (running one reports its error)."""
    for name, path in pipeline_files(source_dir).items():
        try:
            document = load_file(path)
        except (OSError, YamlError):
            document = None
        if isinstance(document, dict):
            yield name, path, document
        elif unreadable is not None:
            unreadable.append(path)


def resolve_file(settings: Settings, ref: str, source_dir: Path | None = None) -> Path:
    """A pipeline by file path, by name, or by kind (build, retrain, release) of the selected model.

    `build` is <project>-build of the model MLOPS_MODEL selects (the first in mlops.yml by default)
    when no pipeline is named `build` itself.
    """
    path = Path(ref)
    if path.is_file():
        return path.resolve()
    files = pipeline_files(source_dir or settings.root)
    if ref in files:
        return files[ref]
    if ref in KINDS and settings.models:
        try:
            own = pipeline_name(settings.model.project, ref)
        except ConfigError as exc:
            raise CIError(str(exc)) from None
        if own in files:
            return files[own]
    raise CIError(f"no pipeline '{ref}' (known: {', '.join(files) or 'none'})")


def parse_param(text: str) -> tuple[str, str]:
    """NAME=VALUE from the command line, the value kept as text (as Azure DevOps receives it): the
    pipeline's declared type reads it (number, boolean, object as YAML), never the command line."""
    if "=" not in text:
        raise CIError(f"--param expects NAME=VALUE, got '{text}'")
    name, value = text.split("=", 1)
    if not name.strip():
        raise CIError(f"--param expects NAME=VALUE, got '{text}'")
    return name.strip(), value


def git_facts(source_dir: Path) -> tuple[str, str]:
    """(branch, commit) of a checkout; empty when not a git repository."""
    return branch_and_commit(source_dir)


def queue(settings: Settings, store: Store, file: Path, reason: str, params: dict | None = None,
          source_dir: Path | None = None, branch: str = "", commit: str = "", resources: dict | None = None,
          triggered_by: int = 0, checkout: dict | None = None) -> int:
    """Record a queued run of file, with what its steps' checkout will hold (sources.describe): the commit
    given, else source_dir's HEAD plus its uncommitted changes; a run triggered by another (and not given a
    checkout) holds what that run held."""
    source_dir = Path(source_dir or settings.root)
    given = commit
    if not branch or not commit:
        found_branch, found_commit = git_facts(source_dir)
        branch, commit = branch or found_branch, commit or found_commit
    try:
        proof = ident.describe(ident.proven(settings))
    except ident.IdentityError as exc:
        raise CIError(str(exc)) from None
    if checkout is None and triggered_by:
        upstream = (store.get_run(triggered_by).state or {}).get("checkout") or {}
        checkout = upstream if upstream and upstream.get("commit", "") == (given or upstream.get("commit", "")) \
            else None
    if checkout is None:
        try:
            checkout = sources.describe(source_dir, settings.state_dir, given)
        except sources.SourcesError as exc:
            raise CIError(str(exc)) from None
    run_id = store.create_run(Path(file).stem, str(file), reason, branch, commit, identity(settings), params or {},
                              str(source_dir), resources, triggered_by)
    store.update_run(run_id, requested_proof=proof,  # the requester, as proven (os-account, token)
                     state={"checkout": checkout})
    return run_id


def definition_names(settings: Settings) -> dict[str, str]:
    """Pipeline file stem -> its Azure DevOps definition name, from mlops.yml `ci.pipelines`
    ({definition name: file stem or path}); a pipeline not listed is named by its file stem."""
    names = {}
    for name, target in settings.ci.pipelines.items():
        names[Path(str(target)).stem] = str(name)
    return names


def definition_name(settings: Settings, stem: str) -> str:
    """The definition name of the pipeline whose file stem is stem (default: the stem)."""
    return definition_names(settings).get(stem, stem)


COLLECTION_URI = "mlops-ci://local/"  # System.CollectionUri: there is no Azure DevOps organization here
PROJECT_ID = "00000000-0000-0000-0000-000000000001"  # System.TeamProjectId of the local project


def _commit_message(source_dir: str, commit: str) -> str:
    """Build.SourceVersionMessage: the first line of the commit's message, at most 200 characters."""
    from ml_service.workspace.gitinfo import git_output

    return git_output(Path(source_dir), "log", "-1", "--format=%s", commit or "HEAD")[:200] if commit or \
        source_dir else ""


def _repository_uri(source_dir: str) -> str:
    from ml_service.workspace.gitinfo import git_output

    return git_output(Path(source_dir), "remote", "get-url", "origin") or Path(source_dir).resolve().as_uri()


def compile_time(settings: Settings, run) -> dict[str, str]:
    """The predefined variables Azure knows when it expands templates ("Available in templates?" = Yes in
    docs/pipelines/build/variables.md): ${{ variables['Build.SourceBranchName'] }} reads them."""
    branch = run.branch or "main"
    source_branch = branch if branch.startswith("refs/") else f"refs/heads/{branch}"
    name = definition_name(settings, run.pipeline)
    values = {
        "Build.SourceBranch": source_branch, "Build.SourceBranchName": source_branch.rsplit("/", 1)[-1],
        "Build.Reason": run.reason, "Build.DefinitionName": name, "System.DefinitionName": name,
        "System.DefinitionId": definition_id(name), "Build.SourceVersion": run.commit_sha,
        "Build.Repository.Name": Path(settings.root).name, "Build.Repository.Provider": "TfsGit",
        "Build.RequestedFor": run.requested_by, "Build.QueuedBy": run.requested_by,
        "System.TeamProject": Path(settings.root).name, "System.TeamProjectId": PROJECT_ID,
        "System.CollectionUri": COLLECTION_URI, "System.TeamFoundationCollectionUri": COLLECTION_URI,
    }
    if run.reason == "PullRequest":
        values.update({"System.PullRequest.SourceBranch": source_branch,
                       "System.PullRequest.TargetBranch": "refs/heads/main",
                       "System.PullRequest.PullRequestId": str(run.id), "System.PullRequest.PullRequestNumber":
                       str(run.id), "System.PullRequest.SourceCommitId": run.commit_sha,
                       "System.PullRequest.IsFork": "False"})
    return values


def predefined(settings: Settings, store: Store, run) -> dict[str, Var]:
    """The agent's predefined variables for a run."""
    work = store.work_dir(run.id)
    for sub in ("a", "b", "s", "_temp", "TestResults"):  # the agent's layout (Agent.Worker TrackingConfig)
        (work / sub).mkdir(exist_ok=True)
    email = run.requested_by if "@" in run.requested_by else ""
    values = {
        **compile_time(settings, run),
        "Build.BuildId": str(run.id), "Build.BuildNumber": f"{time.strftime('%Y%m%d', time.localtime(run.created))}"
        f".{run.id}",
        "Build.Repository.LocalPath": str(work / "s"), "Build.SourcesDirectory": str(work / "s"),
        "Build.Repository.Uri": _repository_uri(run.source_dir), "Build.RequestedForEmail": email,
        "Build.SourceVersionMessage": _commit_message(run.source_dir, run.commit_sha),
        "Build.BuildUri": f"mlops-ci://{Path(settings.root).name}/runs/{run.id}",
        "Build.ArtifactStagingDirectory": str(work / "a"), "Build.BinariesDirectory": str(work / "b"),
        "Build.StagingDirectory": str(work / "a"), "System.ArtifactsDirectory": str(work / "a"),
        "System.DefaultWorkingDirectory": str(work / "s"), "Agent.TempDirectory": str(work / "_temp"),
        "Agent.BuildDirectory": str(work), "Pipeline.Workspace": str(work), "Agent.OS": "Linux",
        "Agent.Name": "local", "Agent.Id": "1", "Agent.MachineName": os.uname().nodename,
        "Agent.WorkFolder": str(store.directory / "work"), "Agent.ToolsDirectory": str(store.directory / "work" /
                                                                                       "_tool"),
        "Agent.HomeDirectory": str(store.directory), "Agent.OSArchitecture": "X64",
        "Common.TestResultsDirectory": str(work / "TestResults"), "System.WorkFolder": str(store.directory / "work"),
        "System.HostType": "build", "System.CollectionId": PROJECT_ID, "System.PlanId": f"local-plan-{run.id}",
        "System.Debug": "false", "TF_BUILD": "True", "Build.Repository.ID": Path(settings.root).name,
        "Build.Repository.Clean": "false", "Build.QueuedById": run.requested_by, "Build.RequestedForId":
        run.requested_by, "Build.DefinitionVersion": "1", "Build.ContainerId": str(run.id),
        "System.JobAttempt": "1", "System.StageAttempt": "1",
    }
    for alias, resource in (run.resources or {}).items():
        for key in ("runID", "runName", "pipelineName", "sourceBranch", "sourceCommit", "pipelineID",
                    "projectID", "runURI", "sourceProvider", "requestedFor"):
            values[f"Resources.Pipeline.{alias}.{key}"] = str(resource.get(key, ""))
    return {name: Var(value, readonly=True, literal=True) for name, value in values.items()}


RUN_TOKEN = re.compile(r"\$\(([A-Za-z_][\w.]*)(?::([^)]*))?\)")


def _dotnet_date(fmt: str, moment: time.struct_time) -> str:
    """A .NET custom date format (yyyy, yy, MM, M, dd, d, HH, H, mm, ss) of moment."""
    parts = {"yyyy": f"{moment.tm_year:04d}", "yy": f"{moment.tm_year % 100:02d}", "MM": f"{moment.tm_mon:02d}",
             "M": str(moment.tm_mon), "dd": f"{moment.tm_mday:02d}", "d": str(moment.tm_mday),
             "HH": f"{moment.tm_hour:02d}", "H": str(moment.tm_hour), "mm": f"{moment.tm_min:02d}",
             "ss": f"{moment.tm_sec:02d}"}
    return re.sub(r"yyyy|yy|MM|M|dd|d|HH|H|mm|ss", lambda m: parts[m.group(0)], fmt)


def run_number(store: Store, run, fmt: str, variables: dict[str, Var]) -> str:
    """Build.BuildNumber from a `name:` format (run-number.md): $(Date:yyyyMMdd), $(Rev:r) / $(Rev:rr) (1 + the
    runs of this pipeline whose number had the same text before Rev), $(DayOfMonth), $(DayOfYear), $(Hours),
    $(Minutes), $(Month), $(Seconds), $(Year:yy), $(BuildID), $(BuildDefinitionName), $(SourceBranchName),
    $(TeamProject) and variables; the number is kept in the run's state for later runs' Rev."""
    from ml_service.ci.runner.macros import expand

    moment = time.localtime(run.created)
    values = {k.lower(): v.value for k, v in variables.items()}
    short = {"dayofmonth": f"{moment.tm_mday:02d}", "dayofyear": f"{moment.tm_yday:03d}",
             "hours": f"{moment.tm_hour:02d}", "minutes": f"{moment.tm_min:02d}", "month": f"{moment.tm_mon:02d}",
             "seconds": f"{moment.tm_sec:02d}", "buildid": str(run.id),
             "builddefinitionname": values.get("build.definitionname", run.pipeline),
             "definitionname": values.get("build.definitionname", run.pipeline),
             "sourcebranchname": values.get("build.sourcebranchname", ""),
             "sourcebranch": values.get("build.sourcebranch", ""), "teamproject": values.get("system.teamproject", "")}

    def token(match) -> str:
        name, arg = match.group(1).lower(), match.group(2)
        if name == "date":
            return _dotnet_date(arg or "yyyyMMdd", moment)
        if name == "year":
            return _dotnet_date(arg or "yyyy", moment)
        if name == "rev":
            return "\0REV:" + (arg or "r") + "\0"
        return short.get(name, match.group(0))
    text = expand(RUN_TOKEN.sub(token, fmt), variables)
    base = re.sub(r"\0REV:[^\0]*\0", "", text)
    if "\0REV:" in text:
        previous = [r for r in store.list_runs(100000) if r.pipeline == run.pipeline and r.id != run.id
                    and (r.state or {}).get("run_number_base") == base]
        rev = len(previous) + 1

        def fill(match) -> str:
            spec = match.group(1)
            dot = "." if spec.startswith(".") else ""
            width = spec.lstrip(".").count("r")
            return f"{dot}{rev:0{width}d}"
        text = re.sub(r"\0REV:([^\0]*)\0", fill, text)
    state = store.get_run(run.id).state or {}
    state["run_number_base"] = base
    store.update_run(run.id, state=state)
    return re.sub(r"[\\/:\"<>|?@*]", "_", text)[:255]  # characters a run number may not hold


def resource_info(settings: Settings, run) -> dict:
    """What a pipeline resource knows of the run that triggered it (resources.pipeline.<alias>.*)."""
    name = definition_name(settings, run.pipeline)
    return {"runID": run.id, "runName": f"{name} #{run.id}", "pipelineName": name,
            "pipelineID": definition_id(name), "projectID": PROJECT_ID, "runURI":
            f"mlops-ci://{Path(settings.root).name}/runs/{run.id}", "sourceProvider": "TfsGit",
            "requestedFor": run.requested_by, "sourceBranch": f"refs/heads/{run.branch}",
            "sourceCommit": run.commit_sha}


def latest_run(settings: Settings, store: Store, definition: str, branch: str = "", ok_only: bool = True):
    """The newest completed run of a pipeline named by its definition name, its file stem or its
    definition id (a succeeded one unless ok_only is False); None when there is none."""
    for run in store.list_runs(100000):
        name = definition_name(settings, run.pipeline)
        if definition not in (run.pipeline, name, definition_id(name)) or run.status != "completed":
            continue
        if ok_only and run.result not in ("succeeded", "succeededWithIssues"):
            continue
        if branch and run.branch != branch.removeprefix("refs/heads/"):
            continue
        return run
    return None


def resolve_resources(settings: Settings, store: Store, run, document: dict):
    """A run not triggered by a pipeline resource still knows each resource: the latest successful run of its
    source (resources-pipelines-pipeline.md: "version: ... defaults to the latest successful run")."""
    section = document.get("resources") if isinstance(document, dict) else None
    declared = (section.get("pipelines") or []) if isinstance(section, dict) else []
    resources = dict(run.resources or {})
    for resource in declared:
        if not isinstance(resource, dict) or str(resource.get("pipeline")) in resources:
            continue
        found = latest_run(settings, store, str(resource.get("source", "")), str(resource.get("branch") or ""))
        if found is not None:
            resources[str(resource.get("pipeline"))] = resource_info(settings, found)
    if resources != (run.resources or {}):
        store.update_run(run.id, resources=resources)
        run = store.get_run(run.id)
    return run


def execute(settings: Settings, store: Store, run_id: int,
            report: Callable[[str, dict], None] | None = None, chain: bool = True) -> list[int]:
    """Run (or resume) a run in this process; then queue and run completion-triggered runs. Returns run ids."""
    run = store.get_run(run_id)
    if report is not None and run.triggered_by:
        header = f"run {run_id}: {run.pipeline} ({run.reason}, after run {run.triggered_by})"
        report(f"run:{run_id}", {"kind": "run", "status": "header", "display": header})
    if not store.start_run(run_id, os.getpid(), owner_tag(), run.started or time.time()):
        now = store.get_run(run_id)  # canceled or rejected meanwhile, or run by another process: never run again
        raise CIError(f"run {run_id} ({run.pipeline}) is {now.status}" + (f" ({now.result})" if now.result else "") +
                      ": only a queued run, or one waiting for approval, can run")
    try:
        templates = Templates(dict(settings.ci.repositories), store.work_dir(run.id) / "_templates")
        compiler = Compiler(Path(run.source_dir), compile_time(settings, run), templates)
        document = compiler.compile(Path(run.file), run.params)
        schema.check(document, run.file)
        groups = variable_groups(settings.ci.variable_groups, settings.root)
        run = resolve_resources(settings, store, run, document)
        variables = predefined(settings, store, run)
        if document.get("name"):  # the run number format (docs/pipelines/process/run-number.md)
            variables["Build.BuildNumber"] = Var(run_number(store, run, str(document["name"]), variables),
                                                 readonly=True, literal=True)
        for name, var in parse_variables(document.get("variables"), groups).items():
            if name in variables:
                raise CIError(f"variable {name} is predefined and read-only")
            variables[name] = var
        if settings.selected and not any(name.upper() == "MLOPS_MODEL" for name in variables):
            variables["MLOPS_MODEL"] = Var(settings.selected, literal=True)  # the project (--project) of the steps
        engine = Engine(store, run_id, document, variables, lambda env: approval_config(settings, env), report,
                        groups)
        engine.definitions = {stem: definition_name(settings, stem) for stem in pipeline_files(Path(run.source_dir))}
        try:  # what the steps' checkout holds: fixed when the run was queued (older runs: described now)
            engine.checkout = (run.state or {}).get("checkout") or \
                sources.describe(Path(run.source_dir), settings.state_dir, run.commit_sha)
        except sources.SourcesError as exc:
            raise CIError(str(exc)) from None
        engine.source_dir = Path(run.source_dir)
        engine.platform = functools.partial(sources.platform_environment, settings.state_dir, settings.tracking_uri,
                                            settings.artifact_root)
        engine.log_max_bytes = int(settings.ci.log_max_mb * 1024 * 1024)
        mapping = dict(settings.ci.repositories)
        engine.registries = dict(settings.ci.registries)
        source, commit = Path(run.source_dir), engine.checkout.get("commit", "")

        def lfs_used(value: str) -> bool:  # self: its commit tracks LFS files; a repository: seen when cloned
            return value == "self" and bool(commit) and sources.uses_lfs(source, commit)
        engine.plan = preflight.check(document, engine.stages, mapping, engine.definitions, engine.registries,
                                      lfs_used)
        engine.repositories = mapping
        if engine.plan.refused:
            raise CIError("refused before the run: " + "; ".join(engine.plan.refused))
        if engine.plan.stops or engine.plan.notes:
            parts = ([f"cannot run here (the run stops at the first): {'; '.join(engine.plan.stops)}"]
                     if engine.plan.stops else []) + [f"note: {note}" for note in engine.plan.notes]
            store.set_record(run_id, "__plan", "plan", name="plan", display="plan", status="completed",
                             detail=" | ".join(parts)[:4000])
        outcome = engine.run()
    except (TemplateError, EngineError, VariableError, CIError, schema.SchemaError, RepositoryError) as exc:
        _fail(store, run_id, str(exc))
        raise CIError(f"run {run_id} ({run.pipeline}): {exc}") from None
    except (RecursionError, MemoryError) as exc:  # bounded inputs never get here; if one does, the run still ends
        _fail(store, run_id, f"{type(exc).__name__}: the pipeline is too large or too deeply nested")
        raise CIError(f"run {run_id} ({run.pipeline}): the pipeline is too large or too deeply nested "
                      f"({type(exc).__name__})") from None
    except Exception as exc:  # a bug: the run ends failed with the reason, and the traceback is kept
        _fail(store, run_id, f"internal error: {type(exc).__name__}: {exc}")
        raise
    except KeyboardInterrupt:
        store.update_run(run_id, status="completed", result="canceled", finished=time.time())
        for record in store.records(run_id):
            if record["status"] in ("running", "pending"):
                store.set_record(run_id, record["path"], record["kind"], status="completed", result="Canceled")
        return [run_id]
    if outcome.status == "waiting":
        store.update_run(run_id, status="waiting")
        if any(a.get("kind") != "validation" for a in store.approvals(run_id, "pending")):
            supersede_older(store, run_id)  # an environment's exclusive lock; a ManualValidation has none
        return [run_id]
    store.update_run(run_id, status="completed", result=_run_result(outcome.result), finished=time.time())
    sources.retain(store, settings.ci.keep_work)
    ran = [run_id]
    if chain:
        for triggered in completion_triggers(settings, store, run_id):
            ran += execute(settings, store, triggered, report, chain)
    return ran


def _fail(store: Store, run_id: int, reason: str) -> None:
    """End a run as failed with reason: the compile record says why, unfinished records are failed."""
    now = time.time()
    for record in store.records(run_id):
        if record["status"] in ("running", "pending"):
            store.set_record(run_id, record["path"], record["kind"], status="completed", result="Failed",
                             finished=now)
    store.set_record(run_id, "__compile", "error", name="compile", display="compile", status="completed",
                     result="Failed", detail=reason[:4000])
    store.update_run(run_id, status="completed", result="failed", finished=now)


_RUN_RESULT = {"Succeeded": "succeeded", "SucceededWithIssues": "succeededWithIssues", "Failed": "failed",
               "Canceled": "canceled"}
_ENGINE_RESULT = {v: k for k, v in _RUN_RESULT.items()}


def _run_result(result: str) -> str:
    return _RUN_RESULT.get(result, result.lower())


def completion_triggers(settings: Settings, store: Store, run_id: int) -> list[int]:
    """Queue every pipeline whose resources.pipelines trigger on the completion of run_id.

    The source is named by the definition name (mlops.yml ci.pipelines; default the file stem); the trigger's
    branch filter, and its stage filter or else the run's success, decide (triggers.resource_trigger_matches).
    """
    run = store.get_run(run_id)
    names = {run.pipeline, definition_name(settings, run.pipeline)}
    result = _ENGINE_RESULT.get(run.result, "")
    stages = {k: v for k, v in (run.state or {}).get("results", {}).items() if "/" not in k}
    queued = []
    for name, path, document in pipeline_documents(Path(run.source_dir)):
        section = document.get("resources")
        resources = (section.get("pipelines") or []) if isinstance(section, dict) else []
        for resource in resources:
            if not isinstance(resource, dict) or str(resource.get("source")) not in names or \
                    not triggers.resource_trigger_matches(resource, run.branch, result, stages,
                                                          (run.state or {}).get("tags", [])):
                continue
            alias = str(resource.get("pipeline"))
            info = {alias: resource_info(settings, run)}
            queued.append(queue(settings, store, path, "ResourceTrigger", {}, Path(run.source_dir), run.branch,
                                run.commit_sha, info, triggered_by=run.id))
    return queued


def cancel(store: Store, run_id: int) -> str:
    """Cancel a queued, running or waiting run."""
    run = store.get_run(run_id)
    if run.status == "completed":
        raise CIError(f"run {run_id} has already completed ({run.result})")
    if run.status == "running" and run.pid:
        try:
            os.kill(run.pid, signal.SIGTERM)
            return "cancel requested"
        except ProcessLookupError:
            pass
    for approval in store.approvals(run_id, "pending"):
        store.decide(approval["id"], "rejected", "", "run canceled")
    store.update_run(run_id, status="completed", result="canceled", finished=time.time())
    return "canceled"
