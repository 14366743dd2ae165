"""Benchmark (not a test): batch scoring on a Spark standalone cluster, ours against MLflow's own spark_udf on the
same cluster, and against our local engine, at two input sizes.

A master and two workers (one core and `--worker-memory` each, every executor `--executor-memory`) run on
127.0.0.1 (ml_service/batch/spark_standalone.py). The input is the default project's data set resampled to
--rows and --big-rows rows of CSV. At each size, one run of each side, interleaved (spark_udf, ours on Spark,
ours local), each a process of its own, timed end to end and by its work phase:

  spark_udf  a PySpark script: read the CSV with the model's schema (doubles), `mlflow.pyfunc.spark_udf` on the
             same model files (env_manager=local), withColumn, write Parquet. Work: the write action.
  spark      `mlops batch score --engine spark --master spark://...`: read as text, count the splits, mapInArrow
             over the project's score module (checks, rejects, row numbers, committed parts, manifest, MLflow run).
             Work: the counting pass plus the scoring pass.
  local      `mlops batch score` (worker processes on this machine, no Spark). Work: its own "in N s".

Memory per executor: the peak summed RSS of each executor's process tree (its JVM and its Python workers),
sampled every 0.2 s; the largest executor's is printed. The load average (1 min) is printed before each run.

Usage: python bench/batch_spark.py [--rows 1000000] [--big-rows 4000000] [--workdir DIR] [--split-mb MB]
Goal: spark >= 1.0x spark_udf's throughput; memory per executor flat from --rows to --big-rows.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from proctree import children  # bench/ is on sys.path when a benchmark runs as a script

ROOT = Path(__file__).resolve().parents[1]

SPARK_UDF = """
import json, sys, time
started = time.perf_counter()
import mlflow.pyfunc
from pyspark.sql import SparkSession, functions as F, types as T
master, model_dir, source, target, columns, conf = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], \\
    sys.argv[5].split(","), json.loads(sys.argv[6])
builder = SparkSession.builder.master(master).appName("bench spark_udf")
for key, value in conf.items():
    builder = builder.config(key, value)
spark = builder.getOrCreate()
spark.sparkContext.setLogLevel("ERROR")
udf = mlflow.pyfunc.spark_udf(spark, model_dir, result_type="double", env_manager="local")
schema = T.StructType([T.StructField(c, T.DoubleType()) for c in columns])
ready = time.perf_counter()
frame = spark.read.csv(source, header=True, schema=schema)
frame.withColumn("prediction", udf(F.struct(*columns))).select("prediction").write.mode("overwrite").parquet(target)
done = time.perf_counter()
spark.stop()
print(json.dumps({"work": done - ready, "start": ready - started}))
"""


def tree_rss(pid: int) -> int:
    """Summed RSS in bytes of pid and its descendants."""
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


def executor_peak(cluster, stop: threading.Event, peak: list) -> None:
    """The largest executor tree's RSS (executors are the worker JVMs' children), until stop."""
    while not stop.is_set():
        for worker in cluster.workers:
            for executor in children(worker.pid):
                peak[0] = max(peak[0], tree_rss(executor))
        time.sleep(0.2)


def measured(command: list[str], env: dict, cluster) -> tuple[float, str, int]:
    """(wall seconds, stdout, peak executor RSS) of a command."""
    stop, peak = threading.Event(), [0]
    sampler = threading.Thread(target=executor_peak, args=(cluster, stop, peak), daemon=True)
    sampler.start()
    started = time.perf_counter()
    done = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True)
    took = time.perf_counter() - started
    stop.set()
    sampler.join()
    if done.returncode != 0:
        sys.exit(f"{' '.join(command[:6])} ... failed:\n{done.stderr[-4000:]}")
    return took, done.stdout, peak[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--big-rows", type=int, default=4_000_000)
    parser.add_argument("--executor-memory", default="512m")
    parser.add_argument("--worker-memory", default="1g")
    parser.add_argument("--workdir", type=Path, help="keep the workspace and inputs here for the next run")
    parser.add_argument("--split-mb", type=int, help="ours on Spark: --split-mb (default: the command's own)")
    args = parser.parse_args()
    import signal

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the cluster's processes on the way out
    sys.path.insert(0, str(ROOT / "bench"))
    from batch import make_input

    from ml_service.batch.spark_standalone import StandaloneCluster
    from ml_service.config import load_settings

    with contextlib.ExitStack() as stack:
        tmp = (args.workdir or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="mlops-bench-spark-"))))
        tmp = tmp.resolve()
        tmp.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "MLOPS_ROOT": str(ROOT), "MLOPS_STATE_DIR": str(tmp / "ws"),
               "MLFLOW_DISABLE_TELEMETRY": "true", "PYSPARK_PYTHON": sys.executable}
        env.pop("MLOPS_MODEL", None)
        settings = load_settings(env)
        model = settings.model
        if not (tmp / "ws" / "mlflow.db").exists():
            print(f"registering a version of {model.project} in {tmp} ...", flush=True)
            subprocess.run([sys.executable, "-m", "ml_service.cli", "pipeline", "run"], env=env, cwd=ROOT, check=True,
                           capture_output=True)
        from ml_service.batch.model import resolve
        from ml_service.deploy.image import download_model
        from ml_service.workspace.tracking import connect

        version = resolve(connect(settings), f"{model.name}@champion")
        shutil.rmtree(tmp / "model", ignore_errors=True)
        model_dir = download_model(version, tmp / "model")
        sizes = {}
        for rows in (args.rows, args.big_rows):
            path = tmp / f"input-{rows}.csv"
            if not path.exists():
                print(f"writing {rows:,} rows of CSV ...", flush=True)
                make_input(model, rows, path)
            sizes[rows] = path
        columns = sizes[args.rows].open().readline().strip().split(",")
        conf = {"spark.executor.memory": args.executor_memory, "spark.executor.cores": "1",
                "spark.driver.memory": "1g"}
        cluster = stack.enter_context(StandaloneCluster(workers=2, folder=tmp / "cluster",
                                                        worker_memory=args.worker_memory))
        import json

        results = {}
        for rows, path in sizes.items():
            out = tmp / f"out-{rows}"
            sides = {
                "spark_udf": [sys.executable, "-c", SPARK_UDF, cluster.url, str(model_dir), str(path),
                              str(out / "udf"), ",".join(columns), json.dumps(conf)],
                "spark": [sys.executable, "-m", "ml_service.cli", "batch", "score", "--model",
                          f"{model.name}:{version.version}", "--input", str(path), "--output", str(out / "spark"),
                          "--engine", "spark", "--master", cluster.url,
                          *(["--split-mb", str(args.split_mb)] if args.split_mb else []),
                          *[x for key, value in conf.items() for x in ("--conf", f"{key}={value}")]],
                "local": [sys.executable, "-m", "ml_service.cli", "batch", "score", "--model",
                          f"{model.name}:{version.version}", "--input", str(path), "--output", str(out / "local")],
            }
            for side, command in sides.items():
                shutil.rmtree(out / side if side != "spark_udf" else out / "udf", ignore_errors=True)
                load = os.getloadavg()[0]
                wall, stdout, peak = measured(command, env, cluster)
                if side == "spark_udf":
                    work = json.loads(stdout.strip().splitlines()[-1])["work"]
                else:
                    work = float(re.search(r" in ([0-9.]+)s ", stdout).group(1))
                    counted = re.search(r"counting the splits took ([0-9.]+)s", stdout)
                    work += float(counted.group(1)) if counted else 0.0
                results[(rows, side)] = (wall, work, peak, load)
                print(f"{rows:>10,} rows {side:<10} load {load:5.1f}  end to end {wall:7.1f}s  work {work:7.1f}s "
                      f"({rows / work:>9,.0f} rows/s)  peak executor RSS {peak / (1 << 20):6.0f} MiB", flush=True)
        report(args, results)


def report(args, results: dict) -> None:
    """The ratios the goals are about."""
    print()
    for rows in (args.rows, args.big_rows):
        udf, ours, local = (results[(rows, side)] for side in ("spark_udf", "spark", "local"))
        print(f"{rows:,} rows: spark / spark_udf throughput (work) {udf[1] / ours[1]:.2f}x, end to end "
              f"{udf[0] / ours[0]:.2f}x; spark / local (work) {local[1] / ours[1]:.2f}x, end to end "
              f"{local[0] / ours[0]:.2f}x")
    small, big = results[(args.rows, "spark")][2], results[(args.big_rows, "spark")][2]
    print(f"peak RSS of an executor (ours): {small / (1 << 20):.0f} MiB at {args.rows:,} rows, "
          f"{big / (1 << 20):.0f} MiB at {args.big_rows:,} rows ({(big - small) / max(small, 1):+.1%}); "
          f"spark_udf: {results[(args.rows, 'spark_udf')][2] / (1 << 20):.0f} / "
          f"{results[(args.big_rows, 'spark_udf')][2] / (1 << 20):.0f} MiB")


if __name__ == "__main__":
    main()
