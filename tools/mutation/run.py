"""Mutation testing of ml_service: plausible single bugs, each run against the tests that reach its line.

    python tools/mutation/run.py [--modules a.py,b.py] [--sample N] [--seed S] [--workers N] [--resume]
    python tools/mutation/run.py --changed [--threshold 80] [--budget 240]     # make mutation-ci

Every mutant (tools/mutation/plant.py) is one edit to one statement, planted and committed in a copy of the
working tree (.mlops/mutation/<mode>/tree-N, a git repository of its own, never this tree). Its tests are
the ones that ran its line in the test map (tools/mutation/testmap.py: one run of the suite under coverage
with test contexts, subprocesses included), else the fallback (the package's test files and the files that
import the module). Killed: those tests fail, or run past a generous timeout ([mutation] timeout_factor x
their measured time + timeout_constant). The report (.mlops/mutation/report.md, printed too) has the score
per package, module and operator and every mutant no test noticed, as a diff.

--changed (make mutation-ci): the mutants on lines changed against MUTATION_BASE (default origin/main, else
HEAD~1; uncommitted and untracked changes count), at most [mutation] ci_changed of them, plus a fixed seeded
sample of the [mutation] ci_sample modules. Without a fresh map of the whole suite, it maps just those
modules, from the test files that import them (no docker or slow tests). Exit 1 below the threshold.
"""
from __future__ import annotations

import argparse
import configparser
import json
import os
import re
import shutil
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import plant  # noqa: E402
import report  # noqa: E402
import testmap  # noqa: E402
import worker  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
WORK = ROOT / ".mlops" / "mutation"
MAP = WORK / "map.json"
IDENTITY = ["-c", "user.name=mutation", "-c", "user.email=mutation@localhost", "-c", "commit.gpgsign=false"]
QUIET = ["-q", "--no-header", "-p", "no:cacheprovider", "-o", "console_output_style=classic",
         "-W", "ignore::pytest.PytestAssertRewriteWarning"]


def settings() -> configparser.SectionProxy:
    """The [mutation] section of setup.cfg."""
    parser = configparser.ConfigParser()
    parser.read(ROOT / "setup.cfg")
    if not parser.has_section("mutation"):
        parser.add_section("mutation")
    return parser["mutation"]


def git(*args: str, cwd: Path = ROOT, check: bool = False) -> subprocess.CompletedProcess:
    """Run git in cwd."""
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=check)


def all_modules(paths: list[str], exclude: list[str]) -> list[str]:
    """Every Python module under paths (relative, sorted), less the excluded globs."""
    found = []
    for base in paths:
        for path in sorted((ROOT / base).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            if not any(Path(rel).match(pattern) for pattern in exclude):
                found.append(rel)
    return found


def copy_tree(target: Path) -> str:
    """The working tree as it is now (tracked and untracked, not ignored) in target, committed; its commit."""
    names = git("ls-files", "-co", "--exclude-standard", "-z", check=True).stdout.split("\0")
    if target.exists():
        shutil.rmtree(target)
    for name in filter(None, names):
        source = ROOT / name
        if source.is_file() and not source.is_symlink():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    git("init", "-q", "-b", "main", cwd=target, check=True)
    git("add", "-A", cwd=target, check=True)
    git(*IDENTITY, "commit", "-q", "--no-verify", "-m", "the tree under mutation", cwd=target, check=True)
    if sys.prefix != sys.base_prefix:  # the tools tests find in .venv (helm, kubectl, the KServe client)
        (target / ".venv").symlink_to(sys.prefix, target_is_directory=True)
        with open(target / ".git" / "info" / "exclude", "a") as exclude:
            exclude.write("/.venv\n")
    return git("rev-parse", "HEAD", cwd=target, check=True).stdout.strip()


def restore(tree: Path, base: str) -> None:
    """The tree back to its unmutated commit, without anything a test left in it."""
    git("reset", "-q", "--hard", base, cwd=tree, check=True)
    git("clean", "-fdxq", "-e", "/.venv", cwd=tree, check=True)


def plant_in(tree: Path, base: str, mutant: plant.Mutant, text: str) -> None:
    """Plant the mutant in the unmutated tree and commit it (tests that clone HEAD see it too)."""
    restore(tree, base)
    (tree / mutant.path).write_text(mutant.apply(text))
    git(*IDENTITY, "commit", "-q", "--no-verify", "-am", f"mutant {mutant.id}", cwd=tree, check=True)


def changed_lines(modules: list[str]) -> dict[str, set[int]]:
    """module -> its lines added or changed since the base (MUTATION_BASE, origin/main or HEAD~1), uncommitted too."""
    base = os.environ.get("MUTATION_BASE")
    for candidate in ([base] if base else ["origin/main", "HEAD~1"]):
        if git("rev-parse", "-q", "--verify", f"{candidate}^{{commit}}").returncode == 0:
            base = candidate
            break
    else:
        base = None
    found: dict[str, set[int]] = {}
    if base:
        fork = git("merge-base", base, "HEAD").stdout.strip() or base
        module = None
        for line in git("diff", "-U0", "--no-color", "--no-renames", fork, "--", *modules).stdout.splitlines():
            if line.startswith("+++ "):
                module = line[6:] if line.startswith("+++ b/") else None
            elif line.startswith("@@") and module:
                match = re.match(r"@@ -\S+ \+(\d+)(?:,(\d+))? @@", line)
                if match:
                    start, count = int(match.group(1)), int(match.group(2) or 1)
                    found.setdefault(module, set()).update(range(start, start + count))
    for name in git("ls-files", "--others", "--exclude-standard", "--", *modules).stdout.split():
        found[name] = set(range(1, len((ROOT / name).read_text().splitlines()) + 1))
    return {m: lines for m, lines in found.items() if m in modules and lines}


def build_map(tree: Path, tests: list[str], modules: list[str], work: Path, *, extra: list[str], timeout: float,
              log) -> testmap.TestMap:
    """Run tests once in the unmutated tree under coverage with test contexts; the lines -> tests map.

    Past timeout no further test starts (the ones that ran are mapped); 15 minutes later the run is killed."""
    data = work / "map.coverage"
    for old in work.glob("map.coverage*"):
        old.unlink()
    folders = {str(Path(m).parent) for m in modules}
    sources = sorted(f for f in folders if not any(f.startswith(other + "/") for other in folders))
    args = [*QUIET, *(f"--cov={tree / s}" for s in sources), "--cov-context=test", "--cov-report=", *extra, *tests]
    env = {"COVERAGE_FILE": str(data), "COVERAGE_RCFILE": str(tree / "pyproject.toml")}
    log(f"test map: {' '.join(tests) or 'the whole suite'} under coverage ({len(modules)} modules) ...")
    started = time.monotonic()
    job = worker.wait(worker.start(tree, args, key="map", timeout=timeout + 900, stop_after=timeout,
                                   log=work / "map.log", env=env))
    seconds = time.monotonic() - started
    if not data.exists():
        log(f"test map: the run left no coverage data (exit {job.status}; see {work / 'map.log'}): no line has a test")
        data = None
    built = testmap.read_coverage(data, tree, job.outcomes(), modules, seconds)
    failed = sorted(t for t, o in built.outcomes.items() if o == "failed")
    cut = " (stopped at its time limit)" if seconds > timeout else ""
    log(f"test map: {len(built.outcomes)} tests in {seconds:.0f} s{cut} (exit {job.status}); {len(failed)} failed in "
        f"the unmutated tree and are never chosen{': ' + ', '.join(failed[:10]) if failed else ''}")
    return built


def order(tests: list[str], tmap: testmap.TestMap, first: set[str], cap: float) -> tuple[list[str], bool]:
    """The tests to run, the files in first (the module's importers) then the fastest files (a kill comes early),
    a file's tests in the order they ran; cut once their measured time passes cap seconds (and whether it was)."""
    ran = {t: i for i, t in enumerate(tmap.durations)}
    by_file: dict[str, list[str]] = {}
    for test in tests:
        by_file.setdefault(test.split("::")[0], []).append(test)
    files = sorted(by_file, key=lambda f: (f not in first, min(tmap.durations.get(t, 5.0) for t in by_file[f]), f))
    chosen, total = [], 0.0
    for test in (t for f in files for t in sorted(by_file[f], key=lambda t: ran.get(t, 0))):
        total += tmap.durations.get(test, 5.0)
        if cap and total > cap and chosen:
            return chosen, True
        chosen.append(test)
    return chosen, False


def choose_tests(mutant: plant.Mutant, text: str, tmap: testmap.TestMap, cap: float = 0) -> tuple[list[str], str]:
    """The tests for a mutant, and how they were chosen: 'coverage' (the tests that ran its lines, and the tests of
    the files importing its module: seen missing from a map, 2026-12-07), 'fallback' or 'none' (', capped')."""
    first = set(testmap.importers(mutant.path, ROOT))
    found = tmap.covering(mutant.path, mutant.line, mutant.end_line, text) if tmap.fresh(mutant.path, text) else []
    how = "coverage"
    if found:  # and every mapped test of the files that import the module: a map can miss lines a test runs
        found = found + [t for t in tmap.durations if t.split("::")[0] in first and tmap.passed(t) and t not in found]
    if not found:
        files = first | set(testmap.package_tests(mutant.path, ROOT))
        found = [t for t in tmap.durations if t.split("::")[0] in files and tmap.passed(t)]
        how = "fallback"
    if not found:
        return [], "none"
    tests, capped = order(found, tmap, first, cap)
    return tests, how + (f", cut at {cap:.0f} s of {tmap.seconds_of(found):.0f} s" if capped else "")


def verdict(job: worker.Job) -> tuple[str, str]:
    """A finished run's status and detail: the first test that failed, or why the run broke."""
    failed = [t for t, row in job.outcomes().items() if row["outcome"] == "failed"]
    if job.timed_out:
        return "timeout", f"over {job.deadline - job.started:.0f} s"
    if job.status == 0:
        return "survived", ""
    if job.status in (1, 2, 3) or (job.status or 0) < 0:
        return "killed", failed[0] if failed else f"exit {job.status}"
    return "error", f"pytest exit {job.status} (4: a test id not found, 5: no test collected)"


class Run:
    """One mutation run: the mutants chosen, their tests, the trees they are planted in, the verdicts."""

    def __init__(self, args, config: configparser.SectionProxy):
        self.args = args
        self.config = config
        self.mode = "ci" if args.changed else "full"
        self.work = WORK / self.mode
        self.work.mkdir(parents=True, exist_ok=True)
        self.started = time.monotonic()
        self.texts: dict[str, str] = {}
        self.everything = all_modules(config.get("paths", "ml_service").split(), config.get("exclude", "").split())
        self.operators = tuple(o for o in args.operators.split(",") if o) or plant.OPERATORS
        self.trees: list[Path] = []
        self.bases: list[str] = []
        self.what = f"sample {args.sample or 'all'} a module, seed {args.seed}"

    def log(self, message: str) -> None:
        print(f"[{time.monotonic() - self.started:6.0f} s] {message}", flush=True)

    def text(self, module: str) -> str:
        if module not in self.texts:
            self.texts[module] = (ROOT / module).read_text()
        return self.texts[module]

    def candidates(self, module: str) -> list[plant.Mutant]:
        return plant.candidates(module, self.text(module), self.operators)

    def sample(self, module: str, size: int | None) -> list[plant.Mutant]:
        """A seeded sample of the module's mutants (only the ones drawn are compiled)."""
        return plant.sample(self.candidates(module), size, self.args.seed, self.text(module))

    def choose(self) -> list[plant.Mutant]:
        """The mutants of this run: a sample of every module, or (--changed) the changed lines' and a fixed sample."""
        args, config = self.args, self.config
        if not args.changed:
            modules = [m for m in args.modules.split(",") if m] or self.everything
            return [m for module in modules for m in self.sample(module, args.sample)]
        lines = changed_lines(self.everything)
        on_changed = [m for module in sorted(lines) for m in self.candidates(module)
                      if lines[module] & set(range(m.line, m.end_line + 1)) and plant.compiles(m, self.text(module))]
        chosen = plant.sample(on_changed, config.getint("ci_changed", 10), args.seed) if on_changed else []
        for module in config.get("ci_sample", "").split():
            chosen += self.sample(module, config.getint("ci_sample_size", 4))
        self.log(f"changed modules: {', '.join(sorted(lines)) or 'none'}; {len(on_changed)} mutants on changed lines")
        changed = min(len(on_changed), config.getint("ci_changed", 10))
        self.what = f"{changed} on changed lines, {len(chosen) - changed} of the fixed sample, seed {args.seed}"
        return list({m.id: m for m in chosen}.values())

    def prepare(self) -> None:
        """Import the heavy libraries once, and copy the tree for each worker."""
        failed = worker.preload(self.config.get("preload", "").split())
        if failed:
            self.log(f"not preloaded (each run imports them): {', '.join(failed)}")
        self.trees = [self.work / f"tree-{i}" for i in range(max(1, self.args.workers))]
        self.bases = [copy_tree(tree) for tree in self.trees]

    def test_map(self, targets: list[str]) -> testmap.TestMap:
        """The saved map if it is fresh for targets; else a new one (whole suite, or just targets for --changed)."""
        args, config = self.args, self.config
        tmap = testmap.TestMap.load(MAP)
        suite = testmap.suite_digest(ROOT)
        if tmap.suite != suite:
            tmap = testmap.TestMap()  # a test changed: every line may be run by other tests now
        stale = [m for m in targets if not tmap.fresh(m, self.text(m))]
        if args.tests:
            tests = [t for t in args.tests.split(",") if t]
            return self.build(tests, targets, [], config.getfloat("map_timeout", 6 * 3600))
        if args.changed and stale:
            per_module = config.getint("ci_map_files", 4)
            files = sorted({f for m in stale for f in (testmap.importers(m, ROOT) or
                                                       testmap.fallback(m, ROOT))[:per_module]})
            left = args.budget - (time.monotonic() - self.started) if args.budget else float("inf")
            limit = max(30.0, min(config.getfloat("ci_map_timeout", 150), left / 2))
            tmap.merge(self.build(files, stale, ["-m", "not docker and not slow"], limit))
        elif not args.changed and (stale or args.new_map):
            tmap = self.build([], self.everything, [], config.getfloat("map_timeout", 6 * 3600))
            tmap.suite = suite
            tmap.save(MAP)
        return tmap

    def build(self, tests: list[str], modules: list[str], extra: list[str], timeout: float) -> testmap.TestMap:
        built = build_map(self.trees[0], tests, modules, self.work, extra=extra, timeout=timeout, log=self.log)
        restore(self.trees[0], self.bases[0])
        return built

    def execute(self, plan: list[tuple[plant.Mutant, list[str], dict]], tmap: testmap.TestMap) -> list[dict]:
        """Run every planned mutant (--workers at a time); its verdict as a row, appended to results.jsonl."""
        args, config = self.args, self.config
        factor, constant = config.getfloat("timeout_factor", 3.0), config.getfloat("timeout_constant", 120.0)
        results = self.work / "results.jsonl"
        previous = {}
        if args.resume and results.exists():
            for line in results.read_text().splitlines():
                row = json.loads(line)
                previous[(row["id"], row["sha"])] = row
        elif results.exists():
            results.unlink()
        rows: list[dict] = []
        started, at_least = 0, config.getint("ci_min_mutants", 3) if args.budget else 0
        queue = list(plan)
        running: dict[int, tuple[worker.Job, dict, int]] = {}
        free = list(range(len(self.trees)))
        with open(results, "a") as out:
            def finish(row: dict) -> None:
                rows.append(row)
                if (row["id"], row["sha"]) not in previous:
                    out.write(json.dumps(row) + "\n")
                    out.flush()
                detail = f", {row['detail']}" if row.get("detail") else ""
                self.log(f"{len(rows)}/{len(plan)} {row['status']:9} {row['id']} ({row['tests']} tests, "
                         f"{row['selection']}{detail})")

            while queue or running:
                while queue and free:
                    mutant, tests, row = queue.pop(0)
                    if (row["id"], row["sha"]) in previous:
                        finish(previous[(row["id"], row["sha"])])
                    elif not tests:
                        finish({**row, "status": "no tests", "seconds": 0})
                    elif args.budget and time.monotonic() - self.started > args.budget and started >= at_least:
                        finish({**row, "status": "not run", "seconds": 0,
                                "detail": f"past the {args.budget:.0f} s budget"})
                    else:
                        started += 1
                        slot = free.pop(0)
                        plant_in(self.trees[slot], self.bases[slot], mutant, self.text(mutant.path))
                        command = ["-x", *QUIET, "-p", "no:cov", "-p", "no:randomly", *tests]
                        job = worker.start(self.trees[slot], command, key=row["id"], timeout=factor *
                                           tmap.seconds_of(tests) + constant, log=self.work / f"worker-{slot}.log")
                        running[job.pid] = (job, row, slot)
                for job in worker.poll([job for job, _, _ in running.values()]):
                    _, row, slot = running.pop(job.pid)
                    status, detail = verdict(job)
                    restore(self.trees[slot], self.bases[slot])
                    free.append(slot)
                    finish({**row, "status": status, "detail": detail,
                            "seconds": round(time.monotonic() - job.started, 1)})
                if running:
                    time.sleep(0.2)
        return rows

    def report(self, rows: list[dict], tmap: testmap.TestMap, modules: int) -> float | None:
        """Write the report, print its package table and survivors; the score of the mutants that ran."""
        counted = [r for r in rows if r["status"] != "not run"]
        commit = git("rev-parse", "--short", "HEAD").stdout.strip()
        dirty = git("status", "--porcelain", "--", "ml_service", "tests").stdout and " (with uncommitted changes)"
        how = {kind: sum(r["selection"].startswith(kind) for r in rows) for kind in ("coverage", "fallback")}
        header = [f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, tree {commit}{dirty}, {self.mode} run: "
                  f"{len(rows)} mutants in {modules} modules ({self.what}), {len(self.trees)} worker(s), "
                  f"{time.monotonic() - self.started:.0f} s.",
                  f"Test map: {len(tmap.tests)} tests. Tests chosen by coverage for "
                  f"{how['coverage']} mutants, by the fallback for {how['fallback']}; not run (budget): "
                  f"{len(rows) - len(counted)}."]
        name = "report.md" if self.mode == "full" else "report-ci.md"
        (WORK / name).write_text(report.render(counted, header))
        print("\n" + report.printed(counted, header))
        print(f"\nreport: {(WORK / name).relative_to(ROOT)}; "
              f"results: {(self.work / 'results.jsonl').relative_to(ROOT)}")
        return report.score(counted)


def list_plan(run: Run, chosen: list[plant.Mutant]) -> int:
    """--list: each chosen mutant with the tests the saved map gives it (nothing is built or run)."""
    tmap = testmap.TestMap.load(MAP)
    total = 0.0
    for mutant in chosen:
        tests, how = choose_tests(mutant, run.text(mutant.path), tmap, run.config.getfloat("max_test_seconds", 0))
        total += tmap.seconds_of(tests)
        print(f"{mutant.id}  {how}  {len(tests)} tests  ~{tmap.seconds_of(tests):.0f} s")
    stale = sorted({m.path for m in chosen if not tmap.fresh(m.path, run.text(m.path))})
    if stale:
        print(f"the saved test map is missing or stale for {len(stale)} of these modules (a run rebuilds it)")
    print(f"{len(chosen)} mutants; their tests take ~{total:.0f} s if every mutant survives")
    return 0


def main(argv: list[str] | None = None) -> int:
    """make mutation / make mutation-ci."""
    config = settings()
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--changed", action="store_true", help="mutants on changed lines + a fixed sample (CI)")
    parser.add_argument("--modules", default="", help="comma-separated modules (default: all of [mutation] paths)")
    parser.add_argument("--sample", type=int, default=config.getint("sample", 0) or None,
                        help="at most this many mutants a module, seeded, spread over the operators (default: all)")
    parser.add_argument("--seed", default=config.get("seed", "0"))
    parser.add_argument("--operators", default="", help=f"comma-separated, of: {', '.join(plant.OPERATORS)}")
    parser.add_argument("--workers", "--max-children", type=int, default=1, help="mutants run in parallel (default 1)")
    parser.add_argument("--threshold", type=float, default=config.getfloat("threshold", 80.0))
    parser.add_argument("--budget", type=float, default=0, help="seconds after which no further mutant starts")
    parser.add_argument("--resume", action="store_true", help="keep the verdicts of mutants already run on this text")
    parser.add_argument("--new-map", action="store_true", help="rebuild the test map even when it is fresh")
    parser.add_argument("--tests", default="", help="comma-separated test files: a map of only these for the "
                        "chosen modules (not saved), instead of the whole suite's")
    parser.add_argument("--map-only", action="store_true", help="build the test map (when stale) and stop")
    parser.add_argument("--list", action="store_true", help="list the chosen mutants and their tests; run nothing")
    args = parser.parse_args(argv)
    run = Run(args, config)
    chosen = run.choose()
    targets = sorted({m.path for m in chosen})
    run.log(f"{len(chosen)} mutants in {len(targets)} modules ({run.mode}: {run.what}; operators: "
            f"{', '.join(run.operators)})")
    if args.list:
        return list_plan(run, chosen)
    run.prepare()
    tmap = run.test_map(targets)
    if args.map_only:
        run.log(f"test map: {MAP.relative_to(ROOT)} ({len(tmap.tests)} tests, {len(tmap.lines)} modules)")
        return 0
    plan = []
    for mutant in chosen:
        text = run.text(mutant.path)
        tests, how = choose_tests(mutant, text, tmap, config.getfloat("max_test_seconds", 0))
        plan.append((mutant, tests, {"id": mutant.id, "module": mutant.path, "line": mutant.line,
                                     "operator": mutant.operator, "sha": testmap.sha256(text), "tests": len(tests),
                                     "selection": how, "diff": mutant.diff(text)}))
    rows = run.execute(plan, tmap)
    value = run.report(rows, tmap, len(targets))
    if value is None and plan:
        print(f"no mutant ran within the {args.budget:.0f} s budget (MUTATION_BUDGET): nothing was checked",
              file=sys.stderr)
        return 1
    if value is not None and value < args.threshold:
        print(f"mutation score {value:.1f}% is below the threshold {args.threshold:g}%", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
