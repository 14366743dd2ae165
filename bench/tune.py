"""Benchmark (not a test): trials per minute of `mlops tune` with 1 and with 2 worker processes on this machine.

The default model project's real search space and train step, in an embedded workspace in a temp folder (the study
in sqlite beside the MLflow store). Each run is a fresh study (`--study bench-...`) of --trials trials; the rate is
the trials the run made over the seconds its search took (after the study was prepared: the held-out rows left out,
the study opened), as `mlops tune` reports it. Runs alternate (1 worker, 2 workers, ...) --rounds times, with the
load average (1 min) before each.

Usage: python bench/tune.py [--trials 20] [--rounds 2]
"""
from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mlops-bench-tune-") as tmp:
        env = {**os.environ, "MLOPS_ROOT": str(ROOT), "MLOPS_STATE_DIR": str(Path(tmp) / "ws"),
               "MLFLOW_DISABLE_TELEMETRY": "true"}
        env.pop("MLOPS_MODEL", None)
        rates: dict[int, list[float]] = {1: [], 2: []}
        for round_ in range(args.rounds):
            for workers in (1, 2):
                load = os.getloadavg()[0]
                started = time.perf_counter()
                done = subprocess.run([sys.executable, "-m", "ml_service.cli", "tune", "--trials", str(args.trials),
                                       "--workers", str(workers), "--study", f"bench-{workers}-{round_}"],
                                      env=env, cwd=ROOT, capture_output=True, text=True)
                wall = time.perf_counter() - started
                if done.returncode != 0:
                    sys.exit(done.stderr[-3000:])
                ran, seconds = re.search(r"\((\d+) trial\(s\) run now in ([0-9.]+)s", done.stdout).groups()
                rate = int(ran) / float(seconds) * 60
                rates[workers].append(rate)
                print(f"round {round_ + 1}, {workers} worker(s), load {load:.1f}: {ran} trials in {float(seconds):.1f}s"
                      f" = {rate:.1f} trials/min (process {wall:.1f}s)", flush=True)
        one, two = statistics.median(rates[1]), statistics.median(rates[2])
        print(f"\nmedian trials/min: 1 worker {one:.1f}, 2 workers {two:.1f} ({two / one:.2f}x); "
              f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
