"""The Azure Pipelines tasks the local engine maps to local behaviour; any other task fails, named."""
from __future__ import annotations

import glob
import shutil
import xml.etree.ElementTree as ElementTree
from pathlib import Path

from ml_service.errors import MLOpsError


class TaskError(MLOpsError):
    """A task failed or is not supported locally."""


SUPPORTED = ("PublishTestResults@2", "PublishCodeCoverageResults@1", "PublishCodeCoverageResults@2",
             "PublishPipelineArtifact@1", "DownloadPipelineArtifact@2")


def run_task(kind: str, step: dict, inputs: dict, ctx: dict) -> str:
    """Run a task, `publish:` or `download:` step; return a log message."""
    if kind == "publish":
        return publish_artifact(str(step["publish"]), str(step.get("artifact") or "drop"), ctx)
    if kind == "download":
        return download_artifact(str(step["download"]), str(step.get("artifact") or ""),
                                 str(step.get("path") or ""), ctx)
    name = str(step["task"])
    if name == "PublishTestResults@2":
        return publish_test_results(inputs, ctx)
    if name.startswith("PublishCodeCoverageResults@"):
        return publish_coverage(inputs, ctx)
    if name == "PublishPipelineArtifact@1":
        return publish_artifact(inputs.get("targetPath") or inputs.get("path", ""),
                                inputs.get("artifact") or inputs.get("artifactName") or "drop", ctx)
    if name == "DownloadPipelineArtifact@2":
        source = "current" if inputs.get("buildType", inputs.get("source", "current")) == "current" \
            else inputs.get("pipeline", "")
        return download_artifact(source, inputs.get("artifact") or inputs.get("artifactName", ""),
                                 inputs.get("path") or inputs.get("targetPath", ""), ctx)
    raise TaskError(f"task {name} is not supported locally (supported: {', '.join(SUPPORTED)})")


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
    summary = _source(inputs.get("summaryFileLocation", ""), ctx)
    if not summary.is_file():
        raise TaskError(f"PublishCodeCoverageResults: {summary} not found")
    target = ctx["store"].artifacts_dir(ctx["run_id"]) / "coverage"
    target.mkdir(parents=True, exist_ok=True)
    shutil.copy(summary, target / summary.name)
    try:
        rate = float(ElementTree.parse(summary).getroot().get("line-rate", 0))
    except (ElementTree.ParseError, ValueError) as exc:
        raise TaskError(f"PublishCodeCoverageResults: {summary} is not Cobertura XML: {exc}") from None
    return f"published code coverage: {rate:.1%} of lines"
