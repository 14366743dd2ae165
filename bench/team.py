"""Benchmark (not a test): the team workspace (MLflow server on PostgreSQL, basic auth, proxied artifacts)
next to the embedded default (sqlite in the state dir).

up:        `mlops workspace up` on a fresh state dir (initdb, PostgreSQL, MLflow's schema, server workers)
retrain:   `mlops pipeline run` cold (a new registered model each time), per step, on each workspace;
           for the server, the HTTP requests one retrain makes, by endpoint (from the server's access log)
request:   one authenticated call (search one experiment) against /health (no auth): what auth costs
load:      20 client processes logging runs at once (each: create run, 10 params, 10 metrics, end), on each
           workspace: runs/s, latency per run (p50, p95), errors

Usage: python bench/team.py [--repeat 2] [--clients 20] [--runs 5] [--workers 2]
"""
from __future__ import annotations

import argparse
import collections
import multiprocessing
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STEP = re.compile(r"^\s+ok (\S+)\s+\S+.*?([\d.]+)s$")
REQUEST = re.compile(r'"(GET|POST|PATCH|DELETE|PUT) (/[^ ?]*)')


def env_for(state_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLOPS_", "MLFLOW_TRACKING_"))}
    env.update({"MLOPS_ROOT": str(ROOT), "MLOPS_STATE_DIR": str(state_dir), "MLFLOW_DISABLE_TELEMETRY": "true",
                **extra})
    return env


def mlops(env: dict[str, str], *args: str) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "ml_service.cli", *args], env=env, cwd=ROOT, capture_output=True,
                          text=True)
    took = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"mlops {' '.join(args)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return took, done.stdout


def retrain(env: dict[str, str], name: str) -> tuple[float, dict[str, float]]:
    took, out = mlops({**env, "MLOPS_MODEL_NAME": name, "MLOPS_EXPERIMENT": name}, "pipeline", "run")
    assert "outcome: registered" in out, out
    steps = {m.group(1): float(m.group(2)) for m in map(STEP.match, out.splitlines()) if m}
    return took, steps


def requests_in(log: Path, start: int) -> collections.Counter:
    text = log.read_text(errors="replace")[start:]
    return collections.Counter(f"{m.group(1)} {re.sub(r'/[0-9a-f-]{8,}', '/ID', m.group(2))}"
                               for m in REQUEST.finditer(text) if "/health" not in m.group(2))


def log_runs(args: tuple) -> tuple[list[float], int, float, float]:
    """One client process: log `runs` runs into experiment; (latency per run, errors, first start, end)."""
    uri, experiment_id, runs, user, password, barrier = args
    os.environ.update({"MLFLOW_TRACKING_USERNAME": user, "MLFLOW_TRACKING_PASSWORD": password} if user else {})
    import mlflow
    from mlflow.entities import Metric, Param

    client = mlflow.MlflowClient(uri)
    barrier.wait()  # every client has imported MLflow: they start together
    started, latencies, errors = time.time(), [], 0
    for _ in range(runs):
        began = time.perf_counter()
        try:
            run = client.create_run(experiment_id)
            now = int(time.time() * 1000)
            client.log_batch(run.info.run_id, params=[Param(f"p{i}", str(i)) for i in range(10)],
                             metrics=[Metric(f"m{i}", float(i), now, 0) for i in range(10)])
            client.set_terminated(run.info.run_id)
            latencies.append(time.perf_counter() - began)
        except Exception:  # noqa: BLE001 - counted: the benchmark reports failures, it does not stop on them
            errors += 1
    return latencies, errors, started, time.time()


def load(uri: str, clients: int, runs: int, user: str = "", password: str = "") -> dict:
    import mlflow

    os.environ.update({"MLFLOW_TRACKING_USERNAME": user, "MLFLOW_TRACKING_PASSWORD": password} if user else {})
    experiment_id = mlflow.MlflowClient(uri).create_experiment(f"load-{time.time_ns()}")
    context = multiprocessing.get_context("spawn")
    with context.Manager() as manager, context.Pool(clients) as pool:
        barrier = manager.Barrier(clients)
        results = pool.map(log_runs, [(uri, experiment_id, runs, user, password, barrier)] * clients)
    wall = max(r[3] for r in results) - min(r[2] for r in results)
    latencies = sorted(x for r in results for x in r[0])
    errors = sum(r[1] for r in results)
    quantile = (lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))]) if latencies else (lambda q: 0)
    return {"runs": len(latencies), "errors": errors, "runs_per_s": len(latencies) / wall if wall > 0 else 0,
            "p50": quantile(0.5), "p95": quantile(0.95)}


def request_cost(uri: str, user: str, password: str, n: int = 20) -> tuple[float, float]:
    import base64
    import urllib.request

    def timed(url: str, headers: dict) -> float:
        values = []
        for _ in range(n):
            began = time.perf_counter()
            with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=30) as response:
                response.read()
            values.append(time.perf_counter() - began)
        return statistics.median(values)

    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return (timed(f"{uri}/health", {}),
            timed(f"{uri}/api/2.0/mlflow/experiments/search?max_results=1", {"Authorization": f"Basic {token}"}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=2, help="cold retrains per workspace (default: %(default)s)")
    parser.add_argument("--clients", type=int, default=20, help="concurrent client processes (default: %(default)s)")
    parser.add_argument("--runs", type=int, default=5, help="runs each client logs (default: %(default)s)")
    parser.add_argument("--workers", type=int, default=2, help="MLflow server workers (default: %(default)s)")
    args = parser.parse_args()
    os.environ.update(MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT="true", MLFLOW_DISABLE_TELEMETRY="true")
    with tempfile.TemporaryDirectory(prefix="mlops-bench-team-") as tmp:
        team_env, embedded_env = env_for(Path(tmp) / "team"), env_for(Path(tmp) / "embedded")
        took_up, _ = mlops(team_env, "workspace", "up", "--workers", str(args.workers))
        try:
            state = Path(tmp) / "team" / "team"
            uri = (state / "team.json").read_text().split('"tracking_uri": "')[1].split('"')[0]
            password = (state / "secrets" / "admin_password").read_text().strip()
            log = state / "logs" / "mlflow.log"
            print(f"team workspace benchmark, {os.cpu_count()} cores, MLflow server with {args.workers} workers")
            print(f"  up (cold: initdb, schema, server)  {took_up:6.2f} s")
            health, call = request_cost(uri, "admin", password)
            print(f"  one request: /health {health * 1000:6.1f} ms, authenticated API call {call * 1000:6.1f} ms")
            for label, env in (("embedded", embedded_env), ("team", team_env)):
                walls, steps = [], collections.defaultdict(list)
                for i in range(args.repeat):
                    mark = log.stat().st_size
                    wall, per_step = retrain(env, f"bench_team_{label}_{i}")
                    walls.append(wall)
                    for name, seconds in per_step.items():
                        steps[name].append(seconds)
                    if label == "team" and i == 0:
                        calls = requests_in(log, mark)
                print(f"  retrain cold on {label:<8} median {statistics.median(walls):6.2f} s  ("
                      + ", ".join(f"{n} {statistics.median(v):.2f} s" for n, v in steps.items()) + ")")
            print(f"  one team retrain made {sum(calls.values())} HTTP requests; most frequent: "
                  + ", ".join(f"{k} x{v}" for k, v in calls.most_common(6)))
            for label, target, user in (("embedded", f"sqlite:///{Path(tmp) / 'embedded' / 'mlflow.db'}", ""),
                                        ("team", uri, "admin")):
                result = load(target, args.clients, args.runs, user, password if user else "")
                print(f"  load {args.clients} clients x {args.runs} runs on {label:<8} "
                      f"{result['runs_per_s']:6.1f} runs/s  p50 {result['p50']:.2f} s  "
                      f"p95 {result['p95']:.2f} s  errors {result['errors']}")
        finally:
            mlops(team_env, "workspace", "down")


if __name__ == "__main__":
    main()
