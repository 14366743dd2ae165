"""The Azure Pipelines tasks the local engine maps to local behaviour; any other task fails, named.

Each built-in task with a local meaning is a small module of this package declaring its inputs once
(task.json names, aliases, defaults): `script` tasks (Bash@3, CmdLine@2, PythonScript@0) become the script
step they are; `local` tasks run here. A task with no local meaning (AzureCLI@2, AzureWebApp@1 ...) is named
before the run (preflight.py) and fails when reached.
"""
from __future__ import annotations

import glob
import shutil
import xml.etree.ElementTree as ElementTree
from pathlib import Path

from ml_service.ci.runner.tasks import (archive_files, bash, cache, cmdline, copy_files, delete_files, docker,
                                        download_build_artifacts, extract_files, helm_deploy, helm_installer,
                                        publish_build_artifacts, python_script, use_python_version)
from ml_service.ci.runner.tasks.inputs import TaskError

MODULES = (bash, cmdline, python_script, use_python_version, copy_files, delete_files, archive_files, extract_files,
           publish_build_artifacts, download_build_artifacts, cache, docker, helm_installer, helm_deploy)
REGISTRY = {name: module for module in MODULES for name in (module.NAME, *getattr(module, "ALSO", ()))}
BUILT_IN = ("PublishTestResults@2", "PublishCodeCoverageResults@1", "PublishCodeCoverageResults@2",
            "PublishPipelineArtifact@1", "DownloadPipelineArtifact@2")
SUPPORTED = (*BUILT_IN, *REGISTRY)
CLOUD_PREFIXES = ("Azure", "MLPublishedPipeline", "ms-air-aiagility", "SqlAzure", "Kubernetes", "Terraform",
                  "charleszipp", "AppCenter", "ServiceFabric", "TwineAuthenticate", "NuGetAuthenticate",
                  "npmAuthenticate", "PipAuthenticate", "Docker@1")


def module(name: str):
    """The module of a built-in task (case-insensitive name@major), or None."""
    lowered = {k.lower(): v for k, v in REGISTRY.items()}
    return lowered.get(str(name).strip().lower())


def supported(name: str) -> bool:
    """Does the local engine give task name its meaning?"""
    return module(name) is not None or str(name).strip().lower() in {n.lower() for n in BUILT_IN}


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
    if kind == "publish":
        return publish_artifact(str(step["publish"]), str(step.get("artifact") or "drop"), ctx)
    if kind == "download" and str(step["download"]) == "none":
        return "download: none (no automatic download of artifacts)"
    if kind == "download" and step.get("__auto"):
        return download_all(ctx)
    if kind == "download":
        return download_artifact(str(step["download"]), str(step.get("artifact") or ""),
                                 str(step.get("path") or ""), ctx)
    name = str(step["task"])
    found = module(name)
    if found is not None and found.KIND == "local":
        return found.run(inputs, ctx)
    if name == "PublishTestResults@2":
        return publish_test_results(inputs, ctx)
    if name.startswith("PublishCodeCoverageResults@"):
        return publish_coverage(inputs, ctx)
    if name == "PublishPipelineArtifact@1":
        return publish_artifact(inputs.get("targetPath") or inputs.get("path", ""),
                                inputs.get("artifact") or inputs.get("artifactName") or "drop", ctx)
    if name == "DownloadPipelineArtifact@2":
        source = str(inputs.get("source") or inputs.get("buildType") or "current").lower()
        artifact = inputs.get("artifact") or inputs.get("artifactName", "")
        path = inputs.get("path") or inputs.get("targetPath") or inputs.get("downloadPath", "")
        if source == "specific":
            return download_run_artifact(specific_run(inputs, ctx), artifact, path, ctx)
        return download_artifact("current", artifact, path, ctx)
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


def download_artifact(source: str, name: str, path: str, ctx: dict) -> str:
    """Copy artifacts of this run ('current') or of a resources.pipelines alias into Pipeline.Workspace."""
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
        shutil.copytree(root / artifact, target, dirs_exist_ok=True)
    return f"downloaded artifact(s) {', '.join(names)} of run {run_id} to {target_base}"


def specific_run(inputs: dict, ctx: dict) -> int:
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
                run.result in ("succeeded", "succeededWithIssues") and \
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


def publish_test_results(inputs: dict, ctx: dict) -> str:
    """Collect JUnit files into the run's `test-results` artifact and summarise them."""
    pattern = inputs.get("testResultsFiles", "**/TEST-*.xml")
    base = Path(inputs.get("searchFolder") or ctx["variables"]["System.DefaultWorkingDirectory"])
    files = sorted({Path(p) for pat in pattern.split("\n") if pat.strip()
                    for p in glob.glob(str(base / pat.strip()), recursive=True)})
    if not files:
        raise TaskError(f"PublishTestResults: no files match {pattern!r} under {base}")
    target = ctx["store"].artifacts_dir(ctx["run_id"]) / "test-results"
    target.mkdir(parents=True, exist_ok=True)
    tests = failures = 0
    for file in files:
        shutil.copy(file, target / file.name)
        try:
            root = ElementTree.parse(file).getroot()
        except ElementTree.ParseError as exc:
            raise TaskError(f"PublishTestResults: {file} is not valid JUnit XML: {exc}") from None
        suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
        for suite in suites:
            tests += int(suite.get("tests", 0))
            failures += int(suite.get("failures", 0)) + int(suite.get("errors", 0))
    title = inputs.get("testRunTitle", "tests")
    summary = f"published test results '{title}': {tests} tests, {failures} failed ({len(files)} file(s))"
    if failures and str(inputs.get("failTaskOnFailedTests", "false")).lower() == "true":
        raise TaskError(summary)
    return summary


def publish_coverage(inputs: dict, ctx: dict) -> str:
    """Copy a Cobertura report into the run's `coverage` artifact and report its line rate."""
    pattern = inputs.get("summaryFileLocation", "")
    matches = [m for line in pattern.splitlines() if line.strip()
               for m in sorted(glob.glob(str(_source(line.strip(), ctx)), recursive=True)) if Path(m).is_file()]
    if not matches:  # summaryFileLocation takes minimatch patterns (PublishCodeCoverageResultsV1/V2 task.json)
        raise TaskError(f"PublishCodeCoverageResults: no file matches {pattern!r}")
    summary = Path(matches[0])
    target = ctx["store"].artifacts_dir(ctx["run_id"]) / "coverage"
    target.mkdir(parents=True, exist_ok=True)
    shutil.copy(summary, target / summary.name)
    try:
        rate = float(ElementTree.parse(summary).getroot().get("line-rate", 0))
    except (ElementTree.ParseError, ValueError) as exc:
        raise TaskError(f"PublishCodeCoverageResults: {summary} is not Cobertura XML: {exc}") from None
    return f"published code coverage: {rate:.1%} of lines"
