"""PublishCodeCoverageResults@1 (Tasks/PublishCodeCoverageResultsV1/task.json; task reference
publish-code-coverage-results-v1): the one summary file summaryFileLocation resolves to (a minimatch pattern: its
first match, as the task's resolvePathToSingleItem) in codeCoverageTool's format (Cobertura or JaCoCo, default
JaCoCo), with reportDirectory's and additionalCodeCoverageFiles' files kept beside it, recorded on the run; no file
is a warning unless failIfCoverageEmpty."""
from __future__ import annotations

from pathlib import Path

from ml_service.ci.runner.tasks.inputs import Input, TaskError, check, flag, lines, read
from ml_service.ci.runner.tasks.minimatch import find, find_absolute
from ml_service.ci.runner.tasks.publish_code_coverage import lines_covered, publish, summary_files

NAME = "PublishCodeCoverageResults@1"
KIND = "local"
INPUTS = {
    "codeCoverageTool": Input("JaCoCo", choices=("Cobertura", "JaCoCo")),
    "summaryFileLocation": Input(required=True),
    "pathToSources": Input(""),
    "reportDirectory": Input(""),
    "additionalCodeCoverageFiles": Input(""),
    "failIfCoverageEmpty": Input("false"),
}


def problems(given: dict) -> list[str]:
    """What in the inputs as written cannot run (checked before the run)."""
    return check(NAME, INPUTS, given)


def run(given: dict, ctx: dict) -> str:
    """Find, read and record the summary file."""
    for problem in problems(given):
        raise TaskError(problem)
    values = read(NAME, INPUTS, given)
    expand = ctx.get("expand", lambda text: text)
    base = Path(ctx["variables"]["System.DefaultWorkingDirectory"])
    files = summary_files(values, ctx)[:1]
    if files:
        root_tag = "coverage" if values["codeCoverageTool"].lower() == "cobertura" else "report"
        lines_covered(files[0], NAME)  # readable at all
        import xml.etree.ElementTree as ElementTree

        if ElementTree.parse(files[0]).getroot().tag != root_tag:
            raise TaskError(f"{NAME}: {files[0]} is not a {values['codeCoverageTool']} report (codeCoverageTool)")
    extra: list[Path] = []
    if values["reportDirectory"] and files:
        report = ctx["path"](expand(values["reportDirectory"]))
        extra += [p for p in find(report, ["**"]) if p.is_file()] if report.is_dir() else []
    if values["additionalCodeCoverageFiles"] and files:
        extra += [p for p in find_absolute(lines(expand(values["additionalCodeCoverageFiles"])), base)
                  if p.is_file() and p not in extra]
    return publish(NAME, files, extra, flag(values["failIfCoverageEmpty"]), ctx)
