"""Benchmark (not a test): `mlops batch score` against a single-process baseline, and its peak memory.

The input is the default model project's data set (`load_settings().model.data`, target dropped),
resampled to --rows rows of CSV. One run prints side by side:

  baseline  one process: pandas.read_csv + the project's score module run() (as the scoring service calls it,
            the model loaded once) + DataFrame.to_parquet
  ours      `mlops batch score` with one worker per core (default chunk size)

Both are timed end to end as processes (start, imports, MLflow, model download and load included) and by
their work phase alone (baseline: read + score + write after the model is loaded; ours: the job's own
"in N s", from the first chunk handed to the workers, forked once the model is loaded, to the last part
written).
Peak memory is the summed RSS of the whole process tree (sampled every 20 ms, cheaply: the sampler
runs beside both and must not take a core's share from either) for --rows and --big-rows.

Both sides of the 1 M comparison run --rounds times, alternating (baseline, ours, baseline, ...), so that a
change in a shared machine's load hits both; the medians are compared and each round's ratio is printed.

Usage: python bench/batch.py [--rows 1000000] [--big-rows 4000000] [--workers 0] [--rounds 3].
Goals on a 2-core machine: ours >= 1.7x the baseline; peak memory within 10% between 1 M and 4 M rows.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from proctree import children  # bench/ is on sys.path when a benchmark runs as a script

ROOT = Path(__file__).resolve().parents[1]

BASELINE = """
import importlib, json, sys, time
started = time.perf_counter()
import pandas as pd
scorer = importlib.import_module(sys.argv[1]); scorer.init(sys.argv[2])
loaded = time.perf_counter()
frame = pd.read_csv(sys.argv[3])[sys.argv[5].split(",")]
result = scorer.run(frame.values.tolist() if getattr(scorer, "INPUT", "frame") == "rows" else frame)
predictions = result["result"] if isinstance(result, dict) else result
pd.DataFrame({"prediction": predictions}).to_parquet(sys.argv[4])
print(json.dumps({"load": loaded - started, "work": time.perf_counter() - loaded}))
"""


def tree_rss(pid: int) -> int:
    """Summed RSS in bytes of pid and all its descendants (from /proc)."""
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        todo.extend(children(current))
        try:
            for line in open(f"/proc/{current}/status"):
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            pass
    return total


def measured(command: list[str], env: dict) -> tuple[float, int, str]:
    """(wall seconds, peak tree RSS in bytes, stdout) of a command."""
    started = time.perf_counter()
    proc = subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak, stop = [0], threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], tree_rss(proc.pid))
            time.sleep(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = proc.communicate()
    took = time.perf_counter() - started
    stop.set()
    sampler.join()
    if proc.returncode != 0:
        sys.exit(f"{' '.join(command)} failed:\n{err[-3000:]}")
    return took, peak[0], out


def make_input(model, rows: int, path: Path) -> list[str]:
    """A CSV of rows resampled from the project's data (target dropped); its column names."""
    import pandas as pd

    data = pd.read_csv(model.data).drop(columns=[model.target])
    data.sample(rows, replace=True, random_state=0).to_csv(path, index=False)
    return list(data.columns)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--big-rows", type=int, default=4_000_000)
    parser.add_argument("--workers", type=int, default=0, help="0: one per core")
    parser.add_argument("--rounds", type=int, default=3, help="alternating runs of each side (default: 3)")
    args = parser.parse_args()
    from ml_service.config import load_settings

    with tempfile.TemporaryDirectory(prefix="mlops-bench-batch-") as tmp:
        tmp = Path(tmp)
        env = {**os.environ, "MLOPS_ROOT": str(ROOT), "MLOPS_STATE_DIR": str(tmp / "ws"),
               "MLFLOW_DISABLE_TELEMETRY": "true"}
        env.pop("MLOPS_MODEL", None)
        settings = load_settings(env)
        model = settings.model
        print(f"registering a version of {model.project} in a temp workspace ...", flush=True)
        subprocess.run([sys.executable, "-m", "ml_service.cli", "pipeline", "run"], env=env, cwd=ROOT, check=True,
                       capture_output=True)
        from ml_service.batch.model import resolve, score_module_for
        from ml_service.deploy.image import download_model
        from ml_service.workspace.tracking import connect

        version = resolve(connect(settings), f"{model.name}@champion")
        model_dir = download_model(version, tmp / "model")
        print(f"writing {args.rows:,} and {args.big_rows:,} rows of CSV ...", flush=True)
        small, big = tmp / "small.csv", tmp / "big.csv"
        columns = make_input(model, args.rows, small)
        make_input(model, args.big_rows, big)

        baseline = [sys.executable, "-c", BASELINE, score_module_for(settings, model.name), str(model_dir), str(small),
                    str(tmp / "base.parquet"), ",".join(columns)]

        def ours(path: Path, name: str) -> list[str]:
            shutil.rmtree(tmp / f"out-{name}", ignore_errors=True)
            return [sys.executable, "-m", "ml_service.cli", "batch", "score", "--model", f"{model.name}:"
                    f"{version.version}", "--input", str(path), "--output", str(tmp / f"out-{name}"),
                    "--workers", str(args.workers)]

        rounds = {"baseline": [], "ours": []}
        load = [os.getloadavg()[0]]
        for i in range(args.rounds):  # alternating, so that a change in the machine's load hits both sides
            print(f"round {i + 1} of {args.rounds} ...", flush=True)
            wall, peak, out = measured(baseline, env)
            rounds["baseline"].append((wall, json.loads(out)["work"], peak))
            wall, peak, out = measured(ours(small, "small"), env)
            rounds["ours"].append((wall, float(re.search(r" in ([0-9.]+)s ", out).group(1)), peak))
        big_wall, big_peak, out = measured(ours(big, "big"), env)
        big_work = float(re.search(r" in ([0-9.]+)s ", out).group(1))
        load.append(os.getloadavg()[0])
        report(args, model.project, rounds, (big_wall, big_work, big_peak), load)


def report(args, project: str, rounds: dict, big: tuple, load: list) -> None:
    """Print both sides (median of the rounds, and each round), the ratios, and the memory peaks."""
    mb = 1 << 20
    base = [statistics.median(values) for values in zip(*rounds["baseline"])]
    ours = [statistics.median(values) for values in zip(*rounds["ours"])]
    print(f"\n{args.rows:,} rows of {project} input ({os.cpu_count()} cores; load average {load[0]:.1f} before, "
          f"{load[1]:.1f} after); median of {args.rounds} alternating rounds")
    print(f"{'':<28}{'baseline':>12}{'ours':>12}{'ratio':>9}")
    print(f"{'end to end (process) s':<28}{base[0]:>12.2f}{ours[0]:>12.2f}{base[0] / ours[0]:>8.2f}x")
    print(f"{'work phase s':<28}{base[1]:>12.2f}{ours[1]:>12.2f}{base[1] / ours[1]:>8.2f}x")
    print(f"{'rows/s (work phase)':<28}{args.rows / base[1]:>12,.0f}{args.rows / ours[1]:>12,.0f}")
    print(f"{'peak RSS MiB':<28}{base[2] / mb:>12.0f}{ours[2] / mb:>12.0f}")
    each = ", ".join(f"{b[0] / o[0]:.2f}x" for b, o in zip(rounds["baseline"], rounds["ours"]))
    print(f"end-to-end ratio of each round: {each}")
    print(f"\npeak RSS of ours: {args.rows:,} rows {ours[2] / mb:.0f} MiB, {args.big_rows:,} rows {big[2] / mb:.0f} "
          f"MiB ({(big[2] / ours[2] - 1):+.1%}); {args.big_rows:,} rows took {big[0]:.1f}s end to end, "
          f"{big[1]:.1f}s work")


if __name__ == "__main__":
    main()
