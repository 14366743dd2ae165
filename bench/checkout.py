"""Benchmark (not a test): what a run's own checkout costs (ml_service/ci/runner/sources.py) on a repository.

For the repository given (default: this one), --rounds times each:
  describe   what the run will hold, at queue time: HEAD (clean) or HEAD plus the uncommitted changes (a tree
             written with a temporary index)
  fresh      the first job of a run: a local clone (objects hard-linked) and a checkout into s/
  next job   a later job of the run: the same clone reset (read-tree --reset, git clean -ffdx)
with the median of each and the load average (1 min), since the machine is shared. The checkout goes to a
scratch folder under the repository's .mlops/ (the same file system as a real run's work folder), removed after.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import time
from pathlib import Path

from ml_service.ci.runner import sources


def timed(action) -> tuple[float, object]:
    """Seconds action took, and what it returned."""
    started = time.perf_counter()
    result = action()
    return time.perf_counter() - started, result


def main() -> None:
    """Measure and print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("repository", nargs="?", default=str(Path(__file__).resolve().parents[1]))
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    root = Path(args.repository).resolve()
    state = root / ".mlops"
    scratch = state / "bench-checkout"
    head = sources._git("rev-parse", "HEAD", cwd=root).stdout.strip()
    files = len(sources._git("ls-files", cwd=root).stdout.splitlines())
    print(f"{root}: {files} files at {head[:12]}; load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    for label, commit in (("commit (clean)", head), ("working tree (HEAD + uncommitted changes)", "")):
        times: dict[str, list[float]] = {"describe": [], "fresh": [], "next job": []}
        for _ in range(args.rounds):
            shutil.rmtree(scratch, ignore_errors=True)
            took, info = timed(lambda: sources.describe(root, state, commit))
            times["describe"].append(took)
            dest = scratch / "s"
            times["fresh"].append(timed(lambda: sources.prepare(info, root, dest))[0])
            (dest / "left-by-a-job.txt").write_text("x")
            times["next job"].append(timed(lambda: sources.prepare(info, root, dest))[0])
        shutil.rmtree(scratch, ignore_errors=True)
        medians = ", ".join(f"{name} {statistics.median(values):.3f} s" for name, values in times.items())
        print(f"{label}: {medians} (medians of {args.rounds}; tree {info.get('tree', '-')[:12]})")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
