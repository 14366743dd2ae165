"""PublishCodeCoverageResults@2 (Tasks/PublishCodeCoverageResultsV2/task.json; task reference
publish-code-coverage-results-v2): every summary file summaryFileLocation (minimatch, one pattern a line) finds is
recorded on the run (the store's coverage of the run; several files make one merged figure). No file is a warning
unless failIfCoverageEmpty. Here Cobertura and JaCoCo reports are read (line coverage); a file in another format
fails the step naming it."""
from __future__ import annotations

import shutil
import xml.etree.ElementTree as ElementTree
from pathlib import Path

from ml_service.ci.runner.tasks.inputs import Input, TaskError, check, flag, lines, read
from ml_service.ci.runner.tasks.minimatch import find_absolute

NAME = "PublishCodeCoverageResults@2"
KIND = "local"
INPUTS = {
    "summaryFileLocation": Input(required=True),
    "pathToSources": Input(""),
    "failIfCoverageEmpty": Input("false"),
}


def problems(given: dict) -> list[str]:
    """What in the inputs as written cannot run (checked before the run)."""
    return check(NAME, INPUTS, given)


def lines_covered(file: Path, task: str) -> tuple[int, int]:
    """(covered, valid) lines of a Cobertura (<coverage lines-covered lines-valid | line-rate>) or JaCoCo
    (<report><counter type="LINE" covered missed>) report."""
    try:
        root = ElementTree.parse(file).getroot()
    except (ElementTree.ParseError, OSError) as exc:
        raise TaskError(f"{task}: {file} is not a coverage report: {exc}") from None
    if root.tag == "coverage":
        if root.get("lines-valid") not in (None, ""):
            return int(root.get("lines-covered") or 0), int(root.get("lines-valid") or 0)
        lines_ = [line for line in root.iter("line")]
        if lines_:
            return sum(1 for line in lines_ if int(line.get("hits") or 0) > 0), len(lines_)
        try:
            rate = float(root.get("line-rate") or 0)
        except ValueError:
            raise TaskError(f"{task}: {file}: line-rate {root.get('line-rate')!r} is not a number") from None
        return round(rate * 1_000_000), 1_000_000
    if root.tag == "report":
        counter = next((c for c in root.findall("counter") if c.get("type") == "LINE"), None)
        if counter is None:
            return 0, 0
        covered, missed = int(counter.get("covered") or 0), int(counter.get("missed") or 0)
        return covered, covered + missed
    raise TaskError(f"{task}: {file} is neither a Cobertura nor a JaCoCo report (root <{root.tag}>); the local "
                    "engine reads those two")


def publish(task: str, files: list[Path], extra: list[Path], fail_if_empty: bool, ctx: dict) -> str:
    """Record files (and extra files kept beside them) as the run's coverage; a message with the line rate."""
    if not files:
        message = "No code coverage results were found to publish"
        if fail_if_empty:
            raise TaskError(f"{task}: {message}")
        return f"##[warning]{message}"
    covered = valid = 0
    for file in files:
        found = lines_covered(file, task)
        covered, valid = covered + found[0], valid + found[1]
    if valid == 0 and fail_if_empty:
        raise TaskError(f"{task}: the code coverage results are empty ({', '.join(map(str, files))})")
    target = ctx["store"].coverage_dir(ctx["run_id"])
    target.mkdir(parents=True, exist_ok=True)
    for file in [*files, *extra]:
        destination = target / file.name
        number = 1
        while destination.exists():
            destination, number = target / f"{file.stem}-{number}{file.suffix}", number + 1
        shutil.copy(file, destination)
    rate = covered / valid if valid else 0.0
    return f"published code coverage of {len(files)} file(s): {rate:.1%} of lines"


def run(given: dict, ctx: dict) -> str:
    """Find, read and record the summary files."""
    for problem in problems(given):
        raise TaskError(problem)
    values = read(NAME, INPUTS, given)
    return publish(NAME, summary_files(values, ctx), [], flag(values["failIfCoverageEmpty"]), ctx)


def summary_files(values: dict, ctx: dict) -> list[Path]:
    """The files summaryFileLocation's patterns find (from the default working directory), sorted, each once."""
    expand = ctx.get("expand", lambda text: text)
    base = Path(ctx["variables"]["System.DefaultWorkingDirectory"])
    return sorted({p for p in find_absolute(lines(expand(values["summaryFileLocation"])), base) if p.is_file()})
