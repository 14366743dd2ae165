"""PublishTestResults@2 (Tasks/PublishTestResultsV2/task.json; task reference publish-test-results-v2): the result
files testResultsFiles (minimatch, one pattern a line) finds under searchFolder are read in their format and
recorded on the run (the store's test results of the run, one test run per file or one merged run); no file is a
warning unless failTaskOnMissingResultsFile; a failed test fails the task only with failTaskOnFailedTests; a file
that cannot be read is a warning unless failTaskOnFailureToPublishResults."""
from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ElementTree
from pathlib import Path

from ml_service.ci.runner.tasks.inputs import Input, TaskError, check, flag, lines, read
from ml_service.ci.runner.tasks.minimatch import find_absolute

NAME = "PublishTestResults@2"
KIND = "local"
INPUTS = {
    "testResultsFormat": Input("JUnit", aliases=("testRunner",),
                               choices=("JUnit", "NUnit", "VSTest", "XUnit", "CTest")),
    "testResultsFiles": Input("**/TEST-*.xml"),
    "searchFolder": Input("$(System.DefaultWorkingDirectory)"),
    "mergeTestResults": Input("false"),
    "failTaskOnFailedTests": Input("false"),
    "failTaskOnFailureToPublishResults": Input("false"),
    "failTaskOnMissingResultsFile": Input("false"),
    "testRunTitle": Input(""),
    "buildPlatform": Input("", aliases=("platform",)),
    "buildConfiguration": Input("", aliases=("configuration",)),
    "publishRunAttachments": Input("true"),
}


def problems(given: dict) -> list[str]:
    """What in the inputs as written cannot run (checked before the run)."""
    return check(NAME, INPUTS, given)


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _elements(root, name: str):
    return [e for e in root.iter() if _local(e.tag) == name]


def count(file: Path, kind: str) -> tuple[int, int]:
    """(tests, failed) of one result file in its format, as the agent's readers count test cases
    (Agent.Worker/TestResults: JUnit testcase with failure/error, NUnit test-case result Failed/Error or
    success False, xUnit test result Fail, VSTest UnitTestResult outcome Failed, CTest Test Status failed)."""
    try:
        root = ElementTree.parse(file).getroot()
    except (ElementTree.ParseError, OSError) as exc:
        raise TaskError(f"{NAME}: {file} is not a {kind} result file: {exc}") from None
    kind = kind.lower()
    if kind == "junit":
        cases = _elements(root, "testcase")
        failed = [c for c in cases if any(_local(x.tag) in ("failure", "error") for x in c)]
    elif kind == "nunit":
        cases = [c for c in _elements(root, "test-case") if c.get("executed", "True") != "False"]
        failed = [c for c in cases if c.get("result", "") in ("Failed", "Failure", "Error")
                  or c.get("success") == "False"]
    elif kind == "xunit":
        cases = _elements(root, "test")
        failed = [c for c in cases if c.get("result", "") == "Fail"]
    elif kind == "vstest":
        cases = _elements(root, "UnitTestResult")
        failed = [c for c in cases if c.get("outcome", "") in ("Failed", "Error", "Timeout", "Aborted")]
    else:  # ctest
        cases = [t for t in _elements(root, "Test") if t.get("Status")]
        failed = [c for c in cases if c.get("Status", "").lower() == "failed"]
    return len(cases), len(failed)


def run(given: dict, ctx: dict) -> str:
    """Read and record the result files; a message of what was published (warnings as ##[warning] lines)."""
    for problem in problems(given):
        raise TaskError(problem)
    values = read(NAME, INPUTS, given)
    expand = ctx.get("expand", lambda text: text)
    base = ctx["path"](expand(values["searchFolder"]))
    patterns = lines(expand(values["testResultsFiles"]))
    files = sorted({p for p in find_absolute(patterns, base) if p.is_file()})
    if not files:
        message = f"No test result files matching {', '.join(patterns)} were found under {base}"
        if flag(values["failTaskOnMissingResultsFile"]):
            raise TaskError(f"{NAME}: {message}")
        return f"##[warning]{message}"
    kind = values["testResultsFormat"]
    target = ctx["store"].test_results_dir(ctx["run_id"])
    target.mkdir(parents=True, exist_ok=True)
    summary_path = target / "runs.json"
    recorded = json.loads(summary_path.read_text()) if summary_path.is_file() else []
    warnings, tests, failed, counted = [], 0, 0, []
    for file in files:
        try:
            found = count(file, kind)
        except TaskError as exc:
            if flag(values["failTaskOnFailureToPublishResults"]):
                raise
            warnings.append(f"##[warning]{exc}")
            continue
        kept = target / f"{len(recorded) + len(counted) + 1:03d}-{file.name}"
        shutil.copy(file, kept)
        counted.append((file, kept, *found))
        tests, failed = tests + found[0], failed + found[1]
    title = values["testRunTitle"] or f"{kind}_TestResults"
    if flag(values["mergeTestResults"]):
        groups = [counted] if counted else []
    else:
        groups = [[one] for one in counted]
    for group in groups:
        recorded.append({"title": title, "format": kind, "files": [str(k.name) for _, k, _, _ in group],
                         "sources": [str(f) for f, _, _, _ in group], "tests": sum(g[2] for g in group),
                         "failed": sum(g[3] for g in group), "job": ctx["variables"].get("System.JobName", ""),
                         "platform": values["buildPlatform"], "configuration": values["buildConfiguration"]})
    summary_path.write_text(ctx.get("mask", str)(json.dumps(recorded, indent=1)))  # never a secret in the store
    summary = (f"published {len(groups)} test run(s) '{title}' ({kind}): {tests} tests, {failed} failed "
               f"({len(counted)} file(s))")
    if failed and flag(values["failTaskOnFailedTests"]):
        raise TaskError(f"{NAME}: {summary}; failTaskOnFailedTests is true")
    return "\n".join([*warnings, summary])
