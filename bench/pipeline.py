"""Benchmark (not a test): wall time of the retraining pipeline, process start included.

cold:    `mlops pipeline run` in a fresh, empty workspace (creates the store, runs every step)
rerun:   the same command right after: validate and train reused; evaluate runs again because
         its input, the champion, has just changed; nothing registered
no-op:   the same command a third time: every step reused, nothing registered

Usage: python bench/pipeline.py [--repeat 3]. Targets on a 2-core machine: cold <= 10 s, no-op <= 3 s.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def timed_run(env: dict[str, str]) -> tuple[float, str]:
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "ml_service.cli", "pipeline", "run"], env=env, cwd=ROOT,
                            capture_output=True, text=True)
    took = time.perf_counter() - started
    if result.returncode != 0:
        sys.exit(f"pipeline failed:\n{result.stderr}")
    return took, result.stdout.strip().splitlines()[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="fresh workspaces to measure (default: %(default)s)")
    args = parser.parse_args()
    cold, rerun, noop = [], [], []
    for _ in range(args.repeat):
        with tempfile.TemporaryDirectory(prefix="mlops-bench-") as tmp:
            env = {**os.environ, "MLOPS_ROOT": str(ROOT), "MLOPS_STATE_DIR": tmp, "MLFLOW_DISABLE_TELEMETRY": "true"}
            env.pop("MLOPS_TRACKING_URI", None)
            took, outcome = timed_run(env)
            cold.append(took)
            assert outcome.startswith("outcome: registered"), outcome
            for series in (rerun, noop):
                took, outcome = timed_run(env)
                series.append(took)
                assert outcome.startswith("outcome: not promoted"), outcome
    print(f"pipeline benchmark, {args.repeat} fresh workspaces, {os.cpu_count()} cores")
    for name, values, target in (("cold run", cold, "<= 10 s"), ("rerun", rerun, ""), ("no-op", noop, "<= 3 s")):
        print(f"  {name:<9} median {statistics.median(values):5.2f} s  min {min(values):5.2f} s  "
              f"max {max(values):5.2f} s" + (f"  (target {target})" if target else ""))


if __name__ == "__main__":
    main()
