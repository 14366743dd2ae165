"""Mutation testing of the modules that guard the README's promises (mutmut 3), score per module.

    python tools/mutation/run.py [--changed | --modules a.py,b.py] [--max-children N] [--threshold 80]

It copies the working tree (tracked and untracked, not ignored files) to .mlops/mutation/tree, runs
`mutmut run` there with the [mutmut] section of setup.cfg, then prints, per module, the mutants
killed, survived, without a test, timed out, and the score: detected (killed + timeout) over all
mutants that were checked; "no tests" counts against the score (nothing would notice that bug).
Every surviving mutant is listed with its diff (`mutmut show NAME` in the tree shows it again).
Exit code 1 when a module scores below the threshold. --changed narrows only_mutate to the
guarded modules changed against MUTATION_BASE (default: origin/main if it exists, else HEAD~1, plus
uncommitted changes), or to a fixed small sample when none changed: the fast subset CI runs.
"""
from __future__ import annotations

import argparse
import configparser
import glob
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
WORK = ROOT / ".mlops" / "mutation"
TREE = WORK / "tree"  # --changed uses WORK / "tree-ci", --modules WORK / "tree-subset"
# The fixed sample `make mutation-ci` checks when no guarded module changed: small and fast (keys, reuse).
SAMPLE = ("ml_service/serving/auth.py", "ml_service/pipelines/reuse.py")
DETECTED = {"killed", "timeout", "caught by type check"}


def read_config() -> configparser.SectionProxy:
    parser = configparser.ConfigParser()
    parser.read(ROOT / "setup.cfg")
    return parser["mutmut"]


def lines(value: str) -> list[str]:
    return [line.strip() for line in value.splitlines() if line.strip()]


def changed_files() -> set[str]:
    """Files changed against the base (committed and not yet committed)."""
    base = os.environ.get("MUTATION_BASE")
    if not base:
        has_origin = subprocess.run(["git", "rev-parse", "-q", "--verify", "origin/main"], cwd=ROOT,
                                    capture_output=True).returncode == 0
        base = "origin/main" if has_origin else "HEAD~1"
    names = set()
    for args in (["diff", "--name-only", f"{base}...HEAD"], ["diff", "--name-only", "HEAD"],
                 ["ls-files", "--others", "--exclude-standard"]):
        done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)
        names |= set(done.stdout.split())
    return names


def copy_tree() -> None:
    """The working tree as it is now (other people's edits in progress included), without .git or ignored files."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, capture_output=True,
                           text=True, check=True).stdout.split("\0")
    if TREE.exists():
        shutil.rmtree(TREE)
    for name in filter(None, files):
        source = ROOT / name
        if source.is_file():
            target = TREE / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)


def write_config(modules: list[str], tests: list[str]) -> None:
    """setup.cfg of the copy: the modules to mutate and the test files (globs expanded) to run."""
    parser = configparser.ConfigParser()
    parser.read(ROOT / "setup.cfg")
    parser["mutmut"]["only_mutate"] = "\n" + "\n".join(modules)
    parser["mutmut"]["pytest_add_cli_args_test_selection"] = "\n" + "\n".join(tests)
    with open(TREE / "setup.cfg", "w") as handle:
        parser.write(handle)


def subset_tests(modules: list[str], guarded: list[str]) -> list[str]:
    """For a subset of the guarded modules, only the tests that guard them ([mutation:tests] in setup.cfg)."""
    if sorted(modules) == sorted(guarded):
        return []
    parser = configparser.ConfigParser()
    parser.read(ROOT / "setup.cfg")
    table = parser["mutation:tests"] if parser.has_section("mutation:tests") else {}
    if not all(m in table for m in modules):
        return []
    return sorted({test for m in modules for test in table[m].split()})


def expand_tests(patterns: list[str]) -> list[str]:
    found = []
    for pattern in patterns:
        found += sorted(os.path.relpath(p, TREE) for p in glob.glob(str(TREE / pattern)))
    return found


def results(modules: list[str]) -> dict[str, dict[str, str]]:
    """module -> {mutant name: status} from mutmut's .meta files."""
    sys.path.insert(0, str(Path(sys.executable).parent))
    from mutmut.stats import status_by_exit_code

    found = {}
    for module in modules:
        meta = TREE / "mutants" / f"{module}.meta"
        if not meta.is_file():
            continue
        codes = json.loads(meta.read_text()).get("exit_code_by_key", {})
        found[module] = {name: status_by_exit_code[code] for name, code in codes.items()}
    return found


def report(found: dict[str, dict[str, str]], threshold: float, show_survivors: bool) -> bool:
    """Print the table and the survivors; True when every module reaches the threshold."""
    ok = True
    print(f"\n{'module':44} {'mutants':>7} {'killed':>6} {'timeout':>7} {'survived':>8} {'no test':>7} {'score':>6}")
    totals = [0, 0]
    for module, statuses in sorted(found.items()):
        counted = [s for s in statuses.values() if s not in ("skipped", "not checked")]
        detected = sum(s in DETECTED for s in counted)
        score = 100.0 * detected / len(counted) if counted else 100.0
        totals[0] += detected
        totals[1] += len(counted)
        ok &= score >= threshold
        below = "" if score >= threshold else f"  < {threshold:g}"
        print(f"{module:44} {len(counted):7d} {sum(s == 'killed' for s in counted):6d} "
              f"{sum(s == 'timeout' for s in counted):7d} {sum(s == 'survived' for s in counted):8d} "
              f"{sum(s == 'no tests' for s in counted):7d} {score:5.1f}%{below}")
    if totals[1]:
        print(f"{'all':44} {totals[1]:7d} {'':6} {'':7} {'':8} {'':7} {100.0 * totals[0] / totals[1]:5.1f}%")
    if show_survivors:
        for module, statuses in sorted(found.items()):
            alive = [name for name, status in sorted(statuses.items()) if status in ("survived", "no tests")]
            if alive:
                print(f"\n--- not detected in {module} ({len(alive)}) ---")
            for name in alive:
                shown = subprocess.run([str(Path(sys.executable).parent / "mutmut"), "show", name], cwd=TREE,
                                       capture_output=True, text=True).stdout
                print("\n".join(line for line in shown.splitlines() if not line.startswith(("---", "+++")))
                      or f"# {name}: {statuses[name]}")
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--changed", action="store_true", help="only guarded modules changed vs the base, or a sample")
    parser.add_argument("--modules", default="", help="comma-separated module paths (default: setup.cfg only_mutate)")
    parser.add_argument("--max-children", type=int, default=1, help="parallel mutant workers (default 1)")
    parser.add_argument("--threshold", type=float, default=80.0, help="minimum score per module, percent")
    parser.add_argument("--no-survivors", action="store_true", help="print the table only")
    args = parser.parse_args(argv)
    global TREE
    if args.changed or args.modules:  # a subset never overwrites the full run's results, nor another subset's
        import hashlib

        subset = hashlib.sha256(args.modules.encode()).hexdigest()[:8]
        TREE = WORK / ("tree-ci" if args.changed else f"tree-subset-{subset}")

    config = read_config()
    guarded = [m for m in lines(config.get("only_mutate", "")) if (ROOT / m).is_file()]
    missing = [m for m in lines(config.get("only_mutate", "")) if not (ROOT / m).is_file()]
    modules = [m for m in args.modules.split(",") if m] or guarded
    if args.changed:
        changed = changed_files()
        modules = [m for m in guarded if m in changed] or list(SAMPLE)
    for module in missing:
        print(f"note: {module} (setup.cfg only_mutate) does not exist in this tree; left out")
    print("mutating: " + ", ".join(modules))
    started = time.monotonic()
    copy_tree()
    tests = expand_tests(subset_tests(modules, guarded) or lines(config.get("pytest_add_cli_args_test_selection", "")))
    write_config(modules, tests)
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("COVERAGE_RCFILE", None)
    env.pop("COVERAGE_PROCESS_START", None)
    mutmut = str(Path(sys.executable).parent / "mutmut")
    done = subprocess.run([mutmut, "run", "--max-children", str(args.max_children)], cwd=TREE, env=env)
    found = results(modules)
    ok = report(found, args.threshold, not args.no_survivors)
    print(f"\nmutation testing took {time.monotonic() - started:.0f} s ({args.max_children} worker(s)); "
          f"the mutated tree is {TREE.relative_to(ROOT)} (`cd {TREE.relative_to(ROOT)} && mutmut browse`)")
    if done.returncode != 0:
        print(f"mutmut run exited with {done.returncode}", file=sys.stderr)
        return 1
    if not found:
        print("no mutation results were recorded", file=sys.stderr)
        return 1
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
