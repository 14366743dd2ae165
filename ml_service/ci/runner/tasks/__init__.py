"""The Azure Pipelines tasks the local engine maps to local behaviour; any other task fails, named.

Each built-in task with a local meaning is a small module of this package declaring its inputs once
(task.json names, aliases, defaults): `script` tasks (Bash@3, CmdLine@2, PythonScript@0) become the script
step they are; `local` tasks run here. A task with no local meaning (AzureCLI@2, AzureWebApp@1 ...) is named
before the run (preflight.py) and fails when reached.
"""
from __future__ import annotations

import shutil
from pathlib import Path

from ml_service.ci.runner.tasks import (archive_files, bash, cache, cmdline, copy_files, delete_files, docker,
                                        delay, download_build_artifacts, download_pipeline_artifact, extract_files,
                                        helm_deploy, helm_installer, manual_validation, manual_validation_v0,
                                        publish_build_artifacts, publish_code_coverage, publish_code_coverage_v1,
                                        publish_pipeline_artifact, publish_test_results, python_script,
                                        use_python_version)
from ml_service.ci.runner.tasks.inputs import TaskError, lines
from ml_service.ci.runner.tasks.minimatch import find

MODULES = (bash, cmdline, python_script, use_python_version, copy_files, delete_files, archive_files, extract_files,
           publish_build_artifacts, download_build_artifacts, cache, docker, helm_installer, helm_deploy,
           publish_test_results, publish_code_coverage, publish_code_coverage_v1, publish_pipeline_artifact,
           download_pipeline_artifact, manual_validation, manual_validation_v0, delay)
REGISTRY = {name: module for module in MODULES for name in (module.NAME, *getattr(module, "ALSO", ()))}
SUPPORTED = tuple(REGISTRY)
CLOUD_PREFIXES = ("Azure", "MLPublishedPipeline", "ms-air-aiagility", "SqlAzure", "Kubernetes", "Terraform",
                  "charleszipp", "AppCenter", "ServiceFabric", "TwineAuthenticate", "NuGetAuthenticate",
                  "npmAuthenticate", "PipAuthenticate", "Docker@1")


def module(name: str):
    """The module of a built-in task (case-insensitive name@major), or None."""
    lowered = {k.lower(): v for k, v in REGISTRY.items()}
    return lowered.get(str(name).strip().lower())


def supported(name: str) -> bool:
    """Does the local engine give task name its meaning?"""
    return module(name) is not None


def problems(name: str, given: dict) -> list[str]:
    """What in a supported task's inputs as written cannot run here (an unknown input, a value outside the
    task's choices or without a local meaning): checked before the run; [] for a task that declares no check."""
    found = module(name)
    check = getattr(found, "problems", None)
    return check(given if isinstance(given, dict) else {}) if check else []


# The other tasks of agentless jobs (docs/pipelines/process/phases.md "Server jobs"): each needs an Azure service
# or a service connection, which do not exist here.
SERVER_CLOUD = {"invokerestapi": "a Generic or Azure Resource Manager service connection (connectedServiceName / "
                                 "connectedServiceNameARM) to call",
                "azurefunction": "an Azure Function", "publishtoazureservicebus": "an Azure Service Bus",
                "azuremonitor": "Azure Monitor alerts", "queryworkitems": "Azure Boards work items",
                "azurepolicycheckgate": "Azure Policy"}


def is_server_task(name: str) -> bool:
    """Does task name run only in an agentless job (ManualValidation, Delay, InvokeRESTAPI ...)?"""
    found = module(name)
    return (found is not None and found.KIND == "server") or \
        str(name).split("@")[0].strip().lower() in SERVER_CLOUD


def server_refusal(name: str) -> str:
    """Why a server task without a local meaning cannot run here, and what to do."""
    needs = SERVER_CLOUD.get(str(name).split("@")[0].strip().lower(), "Azure")
    return (f"task {name} needs {needs}, which does not exist here: run this part on Azure DevOps, or do the same "
            "with a script step (curl ...) in an agent job")


def refusal(name: str) -> str:
    """Why task name cannot run here, and what to do."""
    short = str(name).rsplit(".", 1)[-1]
    if any(short.startswith(p) or str(name).startswith(p) for p in CLOUD_PREFIXES):
        return (f"task {name} needs Azure (a service connection or a cloud resource) and has no local meaning: "
                "run this part on Azure DevOps, or replace it with a script step that does the same locally")
    return (f"task {name} is not supported locally (supported: {', '.join(sorted(SUPPORTED))}): replace it with a "
            "script step")


def run_task(kind: str, step: dict, inputs: dict, ctx: dict) -> str:
    """Run a task, `publish:` or `download:` step; return a log message."""
    if kind == "publish":  # the PublishPipelineArtifact@1 shortcut (steps-publish.md)
        name = str(step.get("artifact") or publish_pipeline_artifact.default_name(ctx))
        return publish_artifact(str(step["publish"]), name, ctx)
    if kind == "download" and str(step["download"]) == "none":
        return "download: none (no automatic download of artifacts)"
    if kind == "download" and step.get("__auto"):
        return download_all(ctx)
    if kind == "download":
        return download_artifact(str(step["download"]), str(step.get("artifact") or ""),
                                 str(step.get("path") or ""), ctx, lines(str(step.get("patterns") or "")))
    name = str(step["task"])
    found = module(name)
    if found is not None and found.KIND in ("local", "server") and hasattr(found, "run"):
        return found.run(inputs, ctx)
    raise TaskError(refusal(name))


def _source(path: str, ctx: dict) -> Path:
    candidate = Path(path)
    return candidate if candidate.is_absolute() else Path(ctx["variables"]["System.DefaultWorkingDirectory"]) / path


def publish_artifact(path: str, name: str, ctx: dict) -> str:
    """Copy a file or folder into the run's artifact `name`."""
    source = _source(path, ctx)
    if not source.exists():
        raise TaskError(f"publish artifact '{name}': {source} does not exist")
    target = ctx["store"].artifacts_dir(ctx["run_id"]) / name
    if target.exists():
        raise TaskError(f"artifact '{name}' was already published in this run")
    target.parent.mkdir(parents=True, exist_ok=True)
    if source.is_dir():
        shutil.copytree(source, target)
    else:
        target.mkdir()
        shutil.copy(source, target / source.name)
    return f"published artifact '{name}' from {source}"


def download_artifact(source: str, name: str, path: str, ctx: dict, patterns: list[str] | None = None) -> str:
    """Copy artifacts of this run ('current') or of a resources.pipelines alias into Pipeline.Workspace (only the
    files patterns match, when given)."""
    workspace = Path(ctx["variables"]["Pipeline.Workspace"])
    if source in ("current", ""):
        run_id = ctx["run_id"]
        default_dir = workspace
    else:
        resource = (ctx.get("resources") or {}).get(source)
        if not resource:
            raise TaskError(f"download: no pipeline resource '{source}' in this run")
        run_id = int(resource["runID"])
        default_dir = workspace / source
    root = ctx["store"].artifacts_dir(run_id)
    names = [name] if name else sorted(p.name for p in root.iterdir()) if root.is_dir() else []
    if not names or not all((root / n).is_dir() for n in names):
        raise TaskError(f"download: run {run_id} has no artifact '{name or '*'}'")
    target_base = Path(path) if path else default_dir
    for artifact in names:
        target = target_base if (path and name) else target_base / artifact
        if not patterns:
            shutil.copytree(root / artifact, target, dirs_exist_ok=True)
            continue
        # `patterns` (steps-download.md): minimatch, inside the artifact when one is named, else <artifact>/<path>
        files = find(root / artifact, patterns) if name else \
            [f for f in find(root, patterns) if f.relative_to(root).parts[0] == artifact]
        for file in files:
            destination = target / file.relative_to(root / artifact)
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(file, destination)
    return f"downloaded artifact(s) {', '.join(names)} of run {run_id} to {target_base}"


def specific_run(inputs: dict, ctx: dict, accepted: tuple[str, ...] = ("succeeded", "succeededWithIssues")) -> int:
    """The run `source: specific` names (Tasks/DownloadPipelineArtifactV2/task.json): `pipeline` (alias
    definition) is a definition name, file stem or definition id; runVersion latest | latestFromBranch (runBranch)
    | specific (runId); preferTriggeringPipeline takes the triggering run when it is of that definition."""
    from ml_service.ci.model.pipeline import definition_id

    wanted = str(inputs.get("pipeline") or inputs.get("definition") or "")
    stems = {stem for stem, name in (ctx.get("definitions") or {}).items()
             if wanted in (stem, name, definition_id(name))}
    if not stems:
        raise TaskError(f"DownloadPipelineArtifact: no pipeline definition '{wanted}' here (mlops.yml ci.pipelines "
                        "maps a definition name to a file of .pipelines/; default: the file stem)")
    version = str(inputs.get("runVersion") or inputs.get("buildVersionToDownload") or "latest")
    if version == "specific":
        run_id = str(inputs.get("runId") or inputs.get("pipelineId") or inputs.get("buildId") or "")
        if not run_id.isdigit():
            raise TaskError(f"DownloadPipelineArtifact: runVersion specific needs a runId, got {run_id!r}")
        return int(run_id)
    if str(inputs.get("preferTriggeringPipeline", "")).lower() == "true":
        for resource in (ctx.get("resources") or {}).values():
            if resource.get("pipelineID") and str(resource.get("pipelineID")) in \
                    {definition_id(ctx["definitions"][s]) for s in stems}:
                return int(resource["runID"])
    branch = str(inputs.get("runBranch") or inputs.get("branchName") or "refs/heads/master") \
        if version == "latestFromBranch" else ""
    for run in ctx["store"].list_runs(100000):
        if run.pipeline in stems and run.status == "completed" and run.id != ctx["run_id"] and \
                run.result in accepted and \
                (not branch or run.branch == branch.removeprefix("refs/heads/")):
            return run.id
    raise TaskError(f"DownloadPipelineArtifact: no successful run of pipeline '{wanted}'"
                    + (f" on {branch}" if branch else ""))


def download_run_artifact(run_id: int, name: str, path: str, ctx: dict, keep_folder: bool = False) -> str:
    """Copy artifact name (all when empty) of run_id into path (default $(Pipeline.Workspace)); keep_folder:
    into path/<artifact> even for one named artifact (DownloadBuildArtifacts)."""
    root = ctx["store"].artifacts_dir(run_id)
    names = [name] if name else sorted(p.name for p in root.iterdir()) if root.is_dir() else []
    if not names or not all((root / n).is_dir() for n in names):
        raise TaskError(f"download: run {run_id} has no artifact '{name or '*'}'")
    base = Path(path) if path else Path(ctx["variables"]["Pipeline.Workspace"])
    for artifact in names:
        shutil.copytree(root / artifact, base if (path and name and not keep_folder) else base / artifact,
                        dirs_exist_ok=True)
    return f"downloaded artifact(s) {', '.join(names)} of run {run_id} to {base}"


def download_all(ctx: dict) -> str:
    """The download a deploy hook gets without a download step: every artifact of this run to
    $(Pipeline.Workspace)/<artifact>, every artifact of each pipeline resource to
    $(Pipeline.Workspace)/<alias>/<artifact> (steps-download.md "Automatic download in deployment jobs")."""
    workspace = Path(ctx["variables"]["Pipeline.Workspace"])
    done = []
    sources = [(ctx["run_id"], workspace, "this run")]
    for alias, resource in (ctx.get("resources") or {}).items():
        if resource.get("runID"):
            sources.append((int(resource["runID"]), workspace / alias, f"resource {alias}"))
    for run_id, base, label in sources:
        root = ctx["store"].artifacts_dir(run_id)
        for artifact in sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []:
            shutil.copytree(artifact, base / artifact.name, dirs_exist_ok=True)
            done.append(f"{artifact.name} ({label})")
    return f"downloaded {', '.join(done)}" if done else "no artifacts to download"
