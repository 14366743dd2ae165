"""Benchmark (not a test): single-row scoring throughput and latency on 127.0.0.1.

Compares, with the same load generator (wrk), one worker each, on this machine:
  (a) our scoring service (`python -m ml_service.serving`, request logging on, to a file, and data
      collection on), one worker, then one worker a core (SO_REUSEPORT, as in the image)
  (b) `mlflow models serve --env-manager local` serving the same registered model
  (c) a bare endpoint returning a constant on the same server stack (uvicorn, httptools, uvloop):
      the ceiling, both as a raw ASGI callable (what our app is) and as a Starlette route (the
      reference the issue quotes, about 18,000 req/s on this machine)
then our p99 latency at about half of our peak rate, and (with Docker) the scoring image size and
the rebuild time for a new model version with a warm cache.

It serves the default model project of mlops.yml (MLOPS_MODEL=PROJECT picks another) and sends the
first row of that project's scoring/smoke.json.

Usage: python bench/serving.py [--seconds 10]. Needs wrk (apt-get install wrk).
Targets: ours >= 20x MLflow's throughput, >= 60% of the raw-ASGI ceiling, p99 <= 5 ms at half our peak,
rebuild <= 15 s.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from proctree import children  # bench/ is on sys.path when a benchmark runs as a script

ROOT = Path(__file__).resolve().parents[1]

CONNECTIONS = 32


def request_bodies(model_dir: Path) -> tuple[str, str]:
    """(our /score body, MLflow's /invocations body) for one row of the project's smoke payload."""
    import yaml

    from ml_service.config import load_settings

    row = json.loads(load_settings().model.smoke_payload.read_text())["data"][0]
    signature = (yaml.safe_load((model_dir / "MLmodel").read_text()) or {}).get("signature") or {}
    columns = [c["name"] for c in json.loads(signature.get("inputs") or "[]")]
    record = row if isinstance(row, dict) else dict(zip(columns, row))
    ours = json.dumps({"data": [row]})
    mlflow = json.dumps({"dataframe_split": {"columns": list(record), "data": [list(record.values())]}})
    return ours, mlflow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wrk_script(path: Path, body: str, delay_ms: int = 0) -> Path:
    lua = ['wrk.method = "POST"', 'wrk.headers["Content-Type"] = "application/json"', f"wrk.body = '{body}'"]
    if delay_ms:
        lua.append(f"function delay() return {delay_ms} end")
    path.write_text("\n".join(lua) + "\n")
    return path


def tree_cpu(pid: int) -> float:
    """CPU seconds (user + system) used so far by pid and its descendants, from /proc."""
    total, todo = 0.0, [pid]
    while todo:
        current = todo.pop()
        todo.extend(children(current))
        try:
            with open(f"/proc/{current}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except OSError:
            pass
    return total


def wrk(url: str, script: Path, seconds: int, connections: int = CONNECTIONS, server: int | None = None) -> dict:
    """wrk's throughput and latency; with server (a pid): also the server's CPU time a request, which a
    loaded shared machine changes far less than req/s (one worker's throughput on an idle core is about
    1 / that)."""
    before = tree_cpu(server) if server else 0.0
    out = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(script), url],
                         capture_output=True, text=True, check=True).stdout
    cpu = tree_cpu(server) - before if server else 0.0
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if non2xx:
        sys.exit(f"{url} answered {non2xx.group(1)} errors:\n{out}")

    def ms(label):
        value, unit = re.search(rf"{label}%\s+([\d.]+)(us|ms|s)", out).groups()
        return float(value) * {"us": 0.001, "ms": 1, "s": 1000}[unit]

    requests = int(re.search(r"(\d+) requests in", out).group(1))
    return {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)), "p50": ms("50"), "p99": ms("99"),
            "cpu_us": cpu / max(requests, 1) * 1e6}


def start(argv: list[str], env: dict, port: int, log: Path) -> subprocess.Popen:
    from ml_service.deploy.smoke import wait_ready

    proc = subprocess.Popen(argv, env={**os.environ, **env}, cwd=ROOT, stdout=open(log, "wb"),
                            stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, 120) if "ml_service.serving" in argv else _wait_port(url, proc)
    except Exception:
        proc.kill()
        raise
    return proc


def _wait_port(url: str, proc, timeout: float = 120) -> None:
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"server exited: see its log ({proc.args})")
        try:
            urllib.request.urlopen(f"{url}/ping" if "mlflow" in str(proc.args) else url, timeout=1)
            return
        except urllib.error.HTTPError:
            return  # it answers HTTP: it is up
        except (urllib.error.URLError, OSError):
            time.sleep(0.3)
    sys.exit(f"{url} did not come up")


def stop(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, 15)
    proc.wait(30)


def registered_model(workspace: Path) -> tuple[dict, Path, str, str, str]:
    """Train and register version 1 of the default project: (env, model dir, tracking URI, name, score module)."""
    from ml_service.config import load_settings

    env = {**os.environ, "MLOPS_ROOT": str(ROOT), "MLOPS_STATE_DIR": str(workspace), "MLFLOW_DISABLE_TELEMETRY": "true"}
    env.pop("MLOPS_TRACKING_URI", None)
    subprocess.run([sys.executable, "-m", "ml_service.cli", "pipeline", "run"], env=env, cwd=ROOT, check=True,
                   capture_output=True)
    model_dir = next((workspace / "artifacts").rglob("MLmodel")).parent
    model = load_settings(env).model
    return env, model_dir, f"sqlite:///{workspace}/mlflow.db", model.name, model.score_module


def image_numbers(workspace_env: dict, model_dir: Path, tmp: Path) -> str:
    try:
        from ml_service.config import load_settings
        from ml_service.deploy.image import build_image, docker_client

        client = docker_client()
    except Exception as exc:
        return f"  image: skipped ({exc})"
    os.environ.update({k: v for k, v in workspace_env.items() if k.startswith("MLOPS_")})
    settings = load_settings()
    build_image(settings, "bench_model", "1", model_dir)  # warm the cache
    other = tmp / "other-model"
    shutil.copytree(model_dir, other)
    (other / "RETRAINED").write_text("a new model version: only the last layer changes\n")
    started = time.perf_counter()
    second = build_image(settings, "bench_model", "2", other)
    rebuild = time.perf_counter() - started
    for tag in ("bench_model:1", "bench_model:2"):
        client.images.remove(f"mlops/{tag}", force=True)
    return (f"  image: {second.size_bytes / 1e6:.0f} MB; rebuild for a new model version (warm cache): "
            f"{rebuild:.1f} s (target <= 15 s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10, help="duration of each load run (default: %(default)s)")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk not found: apt-get install wrk")
    with tempfile.TemporaryDirectory(prefix="mlops-bench-") as tmp:
        tmp = Path(tmp)
        env, model_dir, tracking_uri, model_name, score_module = registered_model(tmp / "ws")
        body, mlflow_body = request_bodies(model_dir)
        score = wrk_script(tmp / "score.lua", body)
        results = {}

        port = free_port()
        ours_env = {"MODEL_DIR": str(model_dir), "MLOPS_MODEL_NAME": model_name, "MLOPS_MODEL_VERSION": "1",
                    "MLOPS_SCORE_MODULE": score_module or "ml_service.serving.pyfunc_score",
                    "MLOPS_COLLECT_DIR": str(tmp / "collected"), "MLOPS_WORKERS": "1"}
        proc = start([sys.executable, "-m", "ml_service.serving", "--port", str(port)], ours_env, port,
                     tmp / "ours.log")
        try:
            url = f"http://127.0.0.1:{port}/score"
            wrk(url, score, 2)  # warm-up
            results["ours"] = wrk(url, score, args.seconds, server=proc.pid)
            half = results["ours"]["rps"] / 2
            delay_ms = 4
            paced = max(1, round(half * delay_ms / 1000))
            results["ours at half peak"] = wrk(url, wrk_script(tmp / "paced.lua", body, delay_ms),
                                               args.seconds, connections=paced)
        finally:
            stop(proc)

        workers = os.cpu_count() or 1
        if workers > 1:  # the image's setting: one worker a core, SO_REUSEPORT
            port = free_port()
            proc = start([sys.executable, "-m", "ml_service.serving", "--port", str(port), "--workers", str(workers)],
                         ours_env, port, tmp / "ours-workers.log")
            try:
                url = f"http://127.0.0.1:{port}/score"
                wrk(url, score, 2)
                results[f"ours, {workers} workers"] = wrk(url, score, args.seconds, connections=CONNECTIONS * 2)
            finally:
                stop(proc)

        for name, app in (("ceiling (raw ASGI)", "app"), ("ceiling (Starlette)", "starlette_app")):
            port = free_port()
            proc = start([sys.executable, "-m", "uvicorn", f"bench.ceiling_app:{app}", "--port", str(port),
                          "--workers", "1", "--http", "httptools", "--loop", "uvloop", "--no-access-log",
                          "--log-level", "warning"], {}, port, tmp / "ceiling.log")
            try:
                wrk(f"http://127.0.0.1:{port}/score", score, 2)
                results[name] = wrk(f"http://127.0.0.1:{port}/score", score, args.seconds, server=proc.pid)
            finally:
                stop(proc)

        port = free_port()
        proc = start([sys.executable, "-m", "mlflow", "models", "serve", "-m", f"models:/{model_name}/1",
                      "--env-manager", "local", "-h", "127.0.0.1", "-p", str(port), "-w", "1"],
                     {"MLFLOW_TRACKING_URI": tracking_uri,  # it starts `uvicorn` from PATH
                      "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"},
                     port, tmp / "mlflow.log")
        try:
            invocations = wrk_script(tmp / "mlflow.lua", mlflow_body)
            wrk(f"http://127.0.0.1:{port}/invocations", invocations, 2)
            results["mlflow"] = wrk(f"http://127.0.0.1:{port}/invocations", invocations, args.seconds,
                                    server=proc.pid)
        finally:
            stop(proc)

        print(f"serving benchmark: single-row requests, wrk -t1 -c{CONNECTIONS}, {args.seconds}s each, "
              f"1 worker, {os.cpu_count()} cores")
        print(f"  (load average {os.getloadavg()[0]:.1f}; server CPU a request: the server's own CPU time over the "
              "requests served, which other load on the machine changes far less than req/s)")
        for name, r in results.items():
            cpu = f"   server CPU {r['cpu_us']:7.1f} us/req" if r.get("cpu_us") else ""
            print(f"  {name:<18} {r['rps']:9.0f} req/s   p50 {r['p50']:7.2f} ms   p99 {r['p99']:7.2f} ms{cpu}")
        ours, mlflow_rps = results["ours"]["rps"], results["mlflow"]["rps"]
        cpu = {name: results[name]["cpu_us"] for name in ("ours", "mlflow", "ceiling (raw ASGI)")}
        print(f"  ours / mlflow               = {ours / mlflow_rps:6.1f}x  (target >= 20x); "
              f"by server CPU a request: {cpu['mlflow'] / cpu['ours']:.1f}x")
        for name in ("ceiling (raw ASGI)", "ceiling (Starlette)"):
            print(f"  ours / {name:<20} = {ours / results[name]['rps']:6.0%}   (target >= 60%); "
                  f"by server CPU a request: {results[name]['cpu_us'] / cpu['ours']:.0%}")
        many = [name for name in results if name.startswith("ours, ")]
        if many:
            print(f"  {many[0]} / 1 worker          = {results[many[0]]['rps'] / ours:6.2f}x")
        print(f"  p99 at {results['ours at half peak']['rps']:.0f} req/s (about half our peak) = "
              f"{results['ours at half peak']['p99']:.2f} ms (target <= 5 ms)")
        print(image_numbers(env, model_dir, tmp))


if __name__ == "__main__":
    main()
