"""Pipeline runs as the Studio shows them: filtered lists, the stage/job/step tree, test results,
coverage, artifacts and the trigger chain, read from the CI run store."""
from __future__ import annotations

import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass, field
from pathlib import Path

from ml_service.ci.server.store import Run, Store
from ml_service.workspace.gitinfo import git_output

PAGE = 50


def outcome(run: Run) -> str:
    """What a run list shows: its result when completed, else its status (queued, running, waiting)."""
    return run.result if run.status == "completed" and run.result else run.status


@dataclass
class RunList:
    """One page of runs, with the values each filter can take."""

    runs: list[Run]
    total: int
    page: int
    pages: int
    choices: dict[str, list[str]]


def filtered(store: Store, filters: dict[str, str], page: int = 1) -> RunList:
    """Runs newest first that match every given filter (pipeline, branch, result, trigger), PAGE a page."""
    runs, total, page, choices = store.page_of_runs(filters, page, PAGE)
    return RunList(runs, total, page, max(1, -(-total // PAGE)), choices)


@dataclass
class Node:
    """A stage, job or step of a run, with its children."""

    record: dict
    children: list["Node"] = field(default_factory=list)

    @property
    def seconds(self) -> float | None:
        """How long it took (so far, when it runs)."""
        r = self.record
        return (r["finished"] - r["started"]) if r["started"] and r["finished"] else None

    @property
    def state(self) -> str:
        """Its result when completed, else its status."""
        return self.record["result"] or self.record["status"]


def tree(records: list[dict]) -> list[Node]:
    """Records (paths Stage, Stage/Job, Stage/Job/NN) as a tree of stages."""
    nodes: dict[str, Node] = {}
    roots: list[Node] = []
    for record in records:
        node = nodes[record["path"]] = Node(record)
        parent = nodes.get(record["path"].rsplit("/", 1)[0]) if "/" in record["path"] else None
        (parent.children if parent else roots).append(node)
    return roots


@dataclass
class TestCase:
    """One JUnit test case."""

    suite: str
    name: str
    outcome: str  # passed, failed, error, skipped
    seconds: float
    message: str = ""


def test_results(store: Store, run_id: int) -> list[TestCase]:
    """The test cases of the run's published JUnit test results (PublishTestResults)."""
    cases = []
    for file in sorted(store.test_results_dir(run_id).glob("*.xml")):
        try:
            root = ElementTree.parse(file).getroot()
        except ElementTree.ParseError:
            continue
        suites = [root] if root.tag == "testsuite" else root.iter("testsuite")
        for suite in suites:
            for case in suite.iter("testcase"):
                outcome_, message = "passed", ""
                for kind in ("failure", "error", "skipped"):
                    found = case.find(kind)
                    if found is not None:
                        outcome_ = {"failure": "failed"}.get(kind, kind)
                        message = (found.get("message") or found.text or "")[:2000]
                        break
                cases.append(TestCase(suite.get("name", file.stem), f"{case.get('classname', '')}::"
                                      f"{case.get('name', '')}".strip(":"), outcome_,
                                      float(case.get("time") or 0), message))
    return cases


def coverage(store: Store, run_id: int) -> list[tuple[str, float]]:
    """(file, line rate) of each Cobertura report the run published (PublishCodeCoverageResults)."""
    rates = []
    for file in sorted(store.coverage_dir(run_id).glob("*.xml")):
        try:
            rates.append((file.name, float(ElementTree.parse(file).getroot().get("line-rate", 0))))
        except (ElementTree.ParseError, ValueError):
            continue
    return rates


def artifacts(store: Store, run_id: int) -> list[tuple[str, int]]:
    """(relative path, size) of every file the run published."""
    root = store.artifacts_dir(run_id)
    if not root.is_dir():
        return []
    return [(p.relative_to(root).as_posix(), p.stat().st_size) for p in sorted(root.rglob("*")) if p.is_file()]


def artifact_file(store: Store, run_id: int, relative: str) -> Path | None:
    """A published file of the run, or None (never a path outside the run's artifacts)."""
    root = store.artifacts_dir(run_id).resolve()
    path = (root / relative).resolve()
    return path if path.is_file() and path.is_relative_to(root) else None


def chain(store: Store, run: Run) -> tuple[list[Run], list[Run]]:
    """(the runs that triggered this one, oldest first; the runs this one triggered)."""
    upstream, seen = [], {run.id}
    current = run
    while current.triggered_by and current.triggered_by not in seen:
        seen.add(current.triggered_by)
        try:
            current = store.get_run(current.triggered_by)
        except KeyError:
            break
        upstream.insert(0, current)
    return upstream, store.triggered_runs(run.id)


def commit_message(run: Run) -> str:
    """The subject of the run's commit, read from its source checkout ("" when unknown)."""
    if not run.commit_sha or not run.source_dir:
        return ""
    return git_output(Path(run.source_dir), "log", "-1", "--format=%s", run.commit_sha)


def step_record(store: Store, run_id: int, path: str) -> dict | None:
    """One record of a run by its path."""
    return next((r for r in store.records(run_id) if r["path"] == path), None)
