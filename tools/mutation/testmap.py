"""Which tests run a line: built once from coverage contexts, used to choose each mutant's tests.

The map is one pytest run of the tests under pytest-cov with `--cov-context=test`: every line of
ml_service is recorded with the tests that ran it, in the test's process and in the subprocesses it
started (pytest-cov passes the test's name to them). With it, the outcome and duration of every test.
It is kept in .mlops/mutation/map.json with the sha256 of each module it measured; a module changed
since has no lines in it (its line numbers moved), and its mutants get the fallback.

Fallback, for a line no test ran (code only run in a container, at import, or from a copy the tests
make): the test files of the module's package (tests/<package>/) and every test file that imports the
module.
"""
from __future__ import annotations

import ast
import functools
import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

TEST_ROOTS = ("tests", "*/tests")


def sha256(text: str) -> str:
    """Hex digest of a module's text."""
    return hashlib.sha256(text.encode()).hexdigest()


def statement_lines(text: str) -> dict[int, int]:
    """line -> the first line of the statement it belongs to (coverage records first lines only)."""
    first: dict[int, int] = {}
    for node in ast.walk(ast.parse(text)):
        if not isinstance(node, ast.stmt):
            continue
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.stmt):  # a compound statement: its header
            last = body[0].lineno - 1
        else:
            last = node.end_lineno
        for line in range(node.lineno, max(last, node.lineno) + 1):
            first[line] = node.lineno
    return first


@dataclass
class TestMap:
    """Lines -> tests, and each test's outcome and duration."""

    tests: list[str] = field(default_factory=list)
    outcomes: dict[str, str] = field(default_factory=dict)
    durations: dict[str, float] = field(default_factory=dict)
    hashes: dict[str, str] = field(default_factory=dict)
    lines: dict[str, dict[str, list[int]]] = field(default_factory=dict)
    seconds: float = 0.0
    suite: str = ""

    @classmethod
    def load(cls, path: Path) -> "TestMap":
        """The map saved at path (an empty one when there is none)."""
        if not path.is_file():
            return cls()
        return cls(**json.loads(path.read_text()))

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.__dict__))

    def fresh(self, module: str, text: str) -> bool:
        """Whether the map measured this text of the module."""
        return self.hashes.get(module) == sha256(text)

    def passed(self, test: str) -> bool:
        return self.outcomes.get(test) == "passed"

    def covering(self, module: str, first: int, last: int, text: str) -> list[str]:
        """The tests that passed and ran any statement of lines first..last of module."""
        by_line = self.lines.get(module, {})
        starts = statement_lines(text)
        found: set[int] = set()
        for line in range(first, last + 1):
            found.update(by_line.get(str(starts.get(line, line)), ()))
            found.update(by_line.get(str(line), ()))
        return sorted({self.tests[i] for i in found if self.passed(self.tests[i])})

    def seconds_of(self, tests: list[str]) -> float:
        """The measured time of those tests (a test file: all its tests)."""
        total = 0.0
        for test in tests:
            if "::" in test:
                total += self.durations.get(test, 5.0)
            else:
                total += sum(d for t, d in self.durations.items() if t.split("::")[0] == test) or 30.0
        return total

    def merge(self, other: "TestMap") -> None:
        """Take other's measure of the modules it measured (a partial map built for a few modules)."""
        index = {name: i for i, name in enumerate(self.tests)}
        for name in other.tests:
            if name not in index:
                index[name] = len(self.tests)
                self.tests.append(name)
        self.outcomes.update(other.outcomes)
        self.durations.update(other.durations)
        for module, by_line in other.lines.items():
            self.lines[module] = {line: [index[other.tests[i]] for i in found] for line, found in by_line.items()}
            self.hashes[module] = other.hashes[module]


def read_coverage(data_file: Path | None, tree: Path, outcomes: dict[str, dict], modules: list[str],
                  seconds: float) -> TestMap:
    """The map from a coverage data file with test contexts ('nodeid|run') and the Recorder's outcomes."""
    from coverage import CoverageData

    data = CoverageData(basename=str(data_file) if data_file else None, no_disk=data_file is None)
    if data_file:
        data.read()
    built = TestMap(outcomes={t: row["outcome"] for t, row in outcomes.items()},
                    durations={t: round(row["duration"], 3) for t, row in outcomes.items()}, seconds=seconds)
    index: dict[str, int] = {}
    by_file: dict[str, list[str]] = {}
    for test in outcomes:
        by_file.setdefault(test.split("::")[0], []).append(test)
    measured = {Path(name).resolve(): name for name in data.measured_files()}
    for module in modules:
        path = (tree / module).resolve()
        built.hashes[module] = sha256(path.read_text())
        name = measured.get(path)
        if name is None:
            built.lines[module] = {}
            continue
        by_line: dict[str, list[int]] = {}
        for line, contexts in data.contexts_by_lineno(name).items():
            tests = {test for c in contexts if c for test in context_tests(c, by_file)}
            for test in tests:
                if test not in index:
                    index[test] = len(built.tests)
                    built.tests.append(test)
            if tests:
                by_line[str(line)] = sorted(index[t] for t in tests)
        built.lines[module] = by_line
    return built


def context_tests(context: str, by_file: dict[str, list[str]]) -> list[str]:
    """The tests a coverage context ('nodeid|setup', 'nodeid|run', 'nodeid|teardown') stands for: the test, and for
    a setup or teardown every test of its file too. A module-scoped fixture runs in the setup of the first test
    that asks for it, and the tests that read what it did come later: on 2026-12-07 a mutant of
    light_store.traced_version ran only against test_each_store_records_what_the_operations_say[mlflow], whose
    setup ran the fixture, and survived; [sqlite], the test that fails on it, was never chosen."""
    test, _, phase = context.rpartition("|")
    if not test:
        return [context]
    if phase in ("setup", "teardown"):
        return [test, *by_file.get(test.split("::")[0], ())]
    return [test]


def suite_digest(root: Path) -> str:
    """sha256 of every test file (and shared test code): the map is rebuilt when a test changed."""
    digest = hashlib.sha256()
    for pattern in TEST_ROOTS:
        for folder in sorted(root.glob(pattern)):
            for path in sorted(folder.rglob("*.py")):
                digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def test_files(root: Path) -> list[Path]:
    """Every test file of the platform and of the model projects."""
    found: list[Path] = []
    for pattern in TEST_ROOTS:
        for folder in sorted(root.glob(pattern)):
            found += sorted(folder.rglob("test_*.py"))
    return found


@functools.lru_cache(maxsize=None)
def importers(module: str, root: Path) -> list[str]:
    """Test files that import the module (`ml_service.ci.runner.masking`, `from ml_service.ci.runner import masking`),
    the ones that name it most first."""
    dotted = module[:-3].replace("/", ".")
    if dotted.endswith(".__init__"):
        dotted = dotted[: -len(".__init__")]
    package, _, name = dotted.rpartition(".")
    patterns = [re.compile(rf"\b{re.escape(dotted)}\b")]
    if package:
        patterns.append(re.compile(rf"from\s+{re.escape(package)}\s+import\s+[^\n]*\b{re.escape(name)}\b"))
        patterns.append(re.compile(rf"\b{re.escape(name)}\."))
    found = []
    for path in test_files(root):
        text = path.read_text(errors="replace")
        if any(p.search(text) for p in patterns[:2]):
            mentions = sum(len(p.findall(text)) for p in patterns)
            found.append((-mentions, path.relative_to(root).as_posix()))
    return [name for _, name in sorted(found)]


@functools.lru_cache(maxsize=None)
def package_tests(module: str, root: Path) -> list[str]:
    """The test files of the module's package: tests/<package>/ (tests/test_*.py for a top-level module)."""
    parts = Path(module).parts
    if len(parts) > 2:
        files = sorted((root / "tests" / parts[1]).rglob("test_*.py"))
    else:
        files = sorted((root / "tests").glob("test_*.py"))
    return [p.relative_to(root).as_posix() for p in files]


def fallback(module: str, root: Path) -> list[str]:
    """Test files for a line no test ran: the package's tests and the module's importers."""
    return sorted(set(package_tests(module, root)) | set(importers(module, root)))
