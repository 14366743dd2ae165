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
change in a shared machine's load hits both; the medians are compared and each round's ratio is printed, with
the machine's load average (1 min) when it started. Each side's CPU time (user + system, of its whole process
tree) is printed too: unlike the wall-clock times, it hardly moves with the load of other processes, so it
tells whether a slower round was ours or the machine's. So is the number of cores each side had on average (its
CPU time over its wall time; at most 1 for the baseline, 2 for ours on 2 cores): where the kernel shares the CPU
fairly between sessions (autogroups), another session's busy processes leave ours about one core, like the
baseline, and the end-to-end ratio then falls toward the ratio of the CPU times.

Usage: python bench/batch.py [--rows 1000000] [--big-rows 4000000] [--workers 0] [--rounds 3] [--workdir DIR].
Goals on a 2-core machine: ours >= 1.7x the baseline; peak memory within 10% between 1 M and 4 M rows.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import resource
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


def cpu_of_children() -> float:
    """User + system CPU seconds of every waited-for descendant so far (a finished command's whole tree: each
    process adds its own waited-for children's time to its own when it is waited for)."""
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


def measured(command: list[str], env: dict) -> tuple[float, int, str, float]:
    """(wall seconds, peak tree RSS in bytes, stdout, CPU seconds of the tree) of a command."""
    cpu = cpu_of_children()
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
    return took, peak[0], out, cpu_of_children() - cpu


def make_input(model, rows: int, path: Path) -> list[str]:
    """A CSV of rows resampled from the project's data (target dropped); its column names."""
    import pandas as pd

    data = pd.read_csv(model.data).drop(columns=[model.target])
    data.sample(rows, replace=True, random_state=0).to_csv(path.with_name(path.name + ".tmp"), index=False)
    os.replace(path.with_name(path.name + ".tmp"), path)  # whole, or not there (a --workdir reuses it)
    return list(data.columns)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--big-rows", type=int, default=4_000_000)
    parser.add_argument("--workers", type=int, default=0, help="0: one per core")
    parser.add_argument("--rounds", type=int, default=3, help="alternating runs of each side (default: 3)")
    parser.add_argument("--workdir", type=Path, help="keep the workspace and the inputs in this folder and reuse "
                                                     "them when run again (default: a temporary folder)")
    args = parser.parse_args()
    from ml_service.config import load_settings

    with contextlib.ExitStack() as stack:
        tmp = args.workdir or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="mlops-bench-batch-")))
        tmp = tmp.resolve()
        tmp.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "MLOPS_ROOT": str(ROOT), "MLOPS_STATE_DIR": str(tmp / "ws"),
               "MLFLOW_DISABLE_TELEMETRY": "true"}
        env.pop("MLOPS_MODEL", None)
        settings = load_settings(env)
        model = settings.model
        if not (tmp / "ws" / "mlflow.db").exists():
            print(f"registering a version of {model.project} in a workspace in {tmp} ...", flush=True)
            subprocess.run([sys.executable, "-m", "ml_service.cli", "pipeline", "run"], env=env, cwd=ROOT,
                           check=True, capture_output=True)
        from ml_service.batch.model import resolve, score_module_for
        from ml_service.deploy.image import download_model
        from ml_service.workspace.tracking import connect

        version = resolve(connect(settings), f"{model.name}@champion")
        shutil.rmtree(tmp / "model", ignore_errors=True)
        model_dir = download_model(version, tmp / "model")
        small, big = tmp / f"input-{args.rows}.csv", tmp / f"input-{args.big_rows}.csv"
        for path, rows in ((small, args.rows), (big, args.big_rows)):
            if not path.exists():
                print(f"writing {rows:,} rows of CSV ...", flush=True)
                make_input(model, rows, path)
        columns = small.open().readline().strip().split(",")

        baseline = [sys.executable, "-c", BASELINE, score_module_for(settings, model.name), str(model_dir), str(small),
                    str(tmp / "base.parquet"), ",".join(columns)]

        def ours(path: Path, name: str) -> list[str]:
            shutil.rmtree(tmp / f"out-{name}", ignore_errors=True)
            return [sys.executable, "-m", "ml_service.cli", "batch", "score", "--model", f"{model.name}:"
                    f"{version.version}", "--input", str(path), "--output", str(tmp / f"out-{name}"),
                    "--workers", str(args.workers)]

        rounds = {"baseline": [], "ours": [], "load": []}
        load = [os.getloadavg()[0]]
        for i in range(args.rounds):  # alternating, so that a change in the machine's load hits both sides
            rounds["load"].append(os.getloadavg()[0])
            wall, peak, out, cpu = measured(baseline, env)
            rounds["baseline"].append((wall, json.loads(out)["work"], peak, cpu))
            wall, peak, out, cpu = measured(ours(small, "small"), env)
            rounds["ours"].append((wall, float(re.search(r" in ([0-9.]+)s ", out).group(1)), peak, cpu))
            (base_wall, base_work, _, base_cpu), (our_wall, our_work, _, our_cpu) = \
                rounds["baseline"][-1], rounds["ours"][-1]
            print(f"round {i + 1} of {args.rounds} (load {rounds['load'][-1]:.1f}): end to end {base_wall:.2f}s / "
                  f"{our_wall:.2f}s = {base_wall / our_wall:.2f}x, work {base_work:.2f}s / {our_work:.2f}s = "
                  f"{base_work / our_work:.2f}x, CPU {base_cpu:.2f}s / {our_cpu:.2f}s, cores had on average "
                  f"{base_cpu / base_wall:.2f} / {our_cpu / our_wall:.2f}", flush=True)
        big_wall, big_peak, out, _ = measured(ours(big, "big"), env)
        big_work = float(re.search(r" in ([0-9.]+)s ", out).group(1))
        load.append(os.getloadavg()[0])
        report(args, model.project, rounds, (big_wall, big_work, big_peak), load)


def report(args, project: str, rounds: dict, big: tuple, load: list) -> None:
    """Print both sides (median of the rounds, and each round), the ratios, and the memory peaks."""
    mb = 1 << 20
    base = [statistics.median(values) for values in zip(*rounds["baseline"])]  # wall, work, peak, CPU
    ours = [statistics.median(values) for values in zip(*rounds["ours"])]
    print(f"\n{args.rows:,} rows of {project} input ({os.cpu_count()} cores; load average {load[0]:.1f} before, "
          f"{load[1]:.1f} after); median of {args.rounds} alternating rounds")
    print(f"{'':<28}{'baseline':>12}{'ours':>12}{'ratio':>9}")
    print(f"{'end to end (process) s':<28}{base[0]:>12.2f}{ours[0]:>12.2f}{base[0] / ours[0]:>8.2f}x")
    print(f"{'work phase s':<28}{base[1]:>12.2f}{ours[1]:>12.2f}{base[1] / ours[1]:>8.2f}x")
    print(f"{'rows/s (work phase)':<28}{args.rows / base[1]:>12,.0f}{args.rows / ours[1]:>12,.0f}")
    print(f"{'CPU s (user + system)':<28}{base[3]:>12.2f}{ours[3]:>12.2f}{base[3] / ours[3]:>8.2f}x")
    print(f"{'peak RSS MiB':<28}{base[2] / mb:>12.0f}{ours[2] / mb:>12.0f}")
    each = ", ".join(f"{b[0] / o[0]:.2f}x (load {load:.1f})"
                     for b, o, load in zip(rounds["baseline"], rounds["ours"], rounds["load"]))
    print(f"end-to-end ratio of each round: {each}")
    best = max(b[0] / o[0] for b, o in zip(rounds["baseline"], rounds["ours"]))
    print(f"best round: {best:.2f}x")
    print(f"\npeak RSS of ours: {args.rows:,} rows {ours[2] / mb:.0f} MiB, {args.big_rows:,} rows {big[2] / mb:.0f} "
          f"MiB ({(big[2] / ours[2] - 1):+.1%}); {args.big_rows:,} rows took {big[0]:.1f}s end to end, "
          f"{big[1]:.1f}s work")


if __name__ == "__main__":
    main()
