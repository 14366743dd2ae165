"""Benchmark (not a test): single-row scoring throughput and latency on 127.0.0.1.

Compares, with the same load generator (wrk), one worker each, on this machine:
  (a) our scoring service (`python -m ml_service.serving`, request logging on, to a file, and data
      collection on), one worker, then one worker a core (SO_REUSEPORT, as in the image)
  (b) `mlflow models serve --env-manager local` serving the same registered model
  (c) a bare endpoint returning a constant on the same server stack (uvicorn, httptools, uvloop):
      the ceiling, both as a raw ASGI callable (what our app is) and as a Starlette route (the
      reference the issue quotes, about 18,000 req/s on this machine)
then our p99 latency at half of our peak rate, and (with Docker) the scoring image size and the
rebuild time for a new model version with a warm cache. Last, ours against the serving runtimes teams pick
instead (bench/serving_peers.py): Seldon MLServer + mlserver-sklearn, KServe's Python model server and
BentoML, each from its own pinned environment (bench/peers/build.sh), one worker each, on the Open
Inference Protocol v2 and on each one's native route (req/s, p50/p99, server CPU a request), and the p99 at
half of each one's v2 peak, open loop, with ours at the same rate beside it.

Each throughput run is repeated (--rounds, ours and the ceilings interleaved) and the best kept: on a
shared machine other load only ever adds CPU time a request, so the lowest is the nearest to the truth,
and interleaving exposes every variant to the same conditions. The load average is printed with each.

p99 at half peak is measured open-loop (as wrk2 does; Debian does not package it): requests are sent on a
fixed schedule (to within about 0.1 ms) at half the measured peak over a pool of keep-alive connections,
whether or not earlier ones were answered, so a server stall delays every request sent meanwhile (a
closed-loop client such as wrk stops sending while it waits, and its percentiles omit the stall). The
client is a small program in its own process (selectors, non-blocking sockets). Each latency runs from the
request's send to the moment the kernel received the response (SO_TIMESTAMPNS), so the time the client
itself waits for a CPU on a busy machine is not charged to the server. The latency from the scheduled time
is printed beside it (it adds the client's lateness when a busy machine starves it), with the client's
send lag, the median of the run's 1-second p99s (one stall from other load spoils one window, not the
figure), and the load average; a run whose client fell behind is flagged. The raw ceiling is measured the
same way at the same rate, interleaved: the floor this machine and client allow at the time.

It serves the default model project of mlops.yml (MLOPS_MODEL=PROJECT picks another) and sends the
first row of that project's scoring/smoke.json.

Usage: python bench/serving.py [--seconds 10] [--rounds 3] [--peers DIR] [--peers-only | --ours-only]. Needs wrk
(apt-get install wrk); the peers need bench/peers/build.sh [DIR] first (skipped when not built).
Targets: ours >= 20x MLflow's throughput, >= 60% of the raw-ASGI ceiling, p99 <= 5 ms at half our peak,
rebuild <= 15 s; ours >= 5x the fastest peer on v2, our p99 at half a peer's peak <= 1/5 of its own, our v2
>= 80% of our /score.
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
from contextlib import ExitStack, contextmanager
from pathlib import Path

import serving_peers  # bench/ is on sys.path when a benchmark runs as a script
from proctree import children

ROOT = Path(__file__).resolve().parents[1]

CONNECTIONS = 32
OPEN_LOOP_CONNECTIONS = 64
PEAK_SECONDS = 5  # our peak measured again before each open-loop round: half of what the machine allows now
LAG_LIMIT_MS = 3.0  # an open-loop client later than this at p99 is starved by other load: its run is flagged
MAX_SLEEP = 0.0005  # the open-loop client's longest nap between looks at its sockets
SO_TIMESTAMPNS = 35  # Linux: the kernel stamps each packet it receives (socket does not name the constant)
BUSY = "  <- the client fell behind its schedule (a busy machine): requests left in bursts, so this run errs high"


def first_row(model_dir: Path) -> tuple[object, list[str]]:
    """The first row of the project's smoke payload (as it is written there) and the signature's column names."""
    import yaml

    from ml_service.config import load_settings

    row = json.loads(load_settings().model.smoke_payload.read_text())["data"][0]
    signature = (yaml.safe_load((model_dir / "MLmodel").read_text()) or {}).get("signature") or {}
    return row, [c["name"] for c in json.loads(signature.get("inputs") or "[]")]


def request_bodies(model_dir: Path) -> tuple[str, str]:
    """(our /score body, MLflow's /invocations body) for one row of the project's smoke payload."""
    row, columns = first_row(model_dir)
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


def open_loop(url: str, body: str, rate: float, seconds: float, connections: int = OPEN_LOOP_CONNECTIONS) -> dict:
    """Latency percentiles at a fixed request rate, from the open-loop client (its own process)."""
    out = subprocess.run([sys.executable, __file__, "--open-loop", url, str(rate), str(seconds), str(connections)],
                         input=body, capture_output=True, text=True, check=True).stdout
    return json.loads(out)


def _open_loop_client(url: str, rate: float, seconds: float, connections: int, body: bytes) -> dict:
    """Send POST url with body at rate a second for seconds over keep-alive connections, open loop; each
    latency ends when the kernel received the response (SO_TIMESTAMPNS), so the time this client waits for
    the CPU on a busy machine is not counted as the server's. Runs in its own process (see the docstring)."""
    import selectors
    import struct
    from collections import deque
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    request = (f"POST {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\nContent-Type: application/json\r\n"
               f"Content-Length: {len(body)}\r\n\r\n").encode() + body
    total = int(rate * seconds)
    clock = time.time  # the kernel's receive timestamps are wall-clock time
    selector = selectors.DefaultSelector()
    latencies: list[tuple[float, float, float]] = []  # (scheduled time, latency from it, latency from the send)
    lags: list[float] = []  # how late each request left: the client's own lateness
    errors = [0]

    class Connection:
        def __init__(self):
            self.sock = socket.create_connection((parts.hostname, parts.port))
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
            self.sock.setblocking(False)
            self.buffer, self.due, self.sent, self.arrived = b"", 0.0, 0.0, 0.0
            selector.register(self.sock, selectors.EVENT_READ, self)

        def send(self, due: float) -> None:
            self.due, self.sent = due, clock()
            lags.append(self.sent - due)
            self.sock.send(request)  # a few hundred bytes: the socket buffer takes them at once

        def receive(self) -> bool:
            """Read what arrived; True when a whole response is in (and its latency recorded)."""
            data, ancillary, _, _ = self.sock.recvmsg(65536, 64)
            if not data:
                raise SystemExit(f"{url} closed a connection during the run")
            for level, kind, stamp in ancillary:
                if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                    sec, nsec = struct.unpack("qq", stamp[:16])
                    self.arrived = sec + nsec / 1e9
            buffer = self.buffer = self.buffer + data if self.buffer else data
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                return False
            head = buffer[:end + 2].lower()  # header names in any case (not every server writes them in lower case)
            start = head.find(b"content-length:") + 15
            length = int(head[start:head.find(b"\r\n", start)])
            if len(buffer) < end + 4 + length:
                return False
            self.buffer = buffer[end + 4 + length:]
            latencies.append((self.due, self.arrived - self.due, self.arrived - self.sent))
            errors[0] += not buffer.startswith(b"HTTP/1.1 200 ")
            return True

    pool = [Connection() for _ in range(connections)]
    for connection in pool:  # each connection once, untimed
        connection.send(clock())
    waiting = len(pool)
    while waiting:
        waiting -= sum(key.data.receive() for key, _ in selector.select(10))
    latencies.clear()
    lags.clear()
    errors[0] = 0
    idle, queue = deque(pool), deque()
    start, sent, answered = clock() + 0.01, 0, 0
    deadline = start + seconds + 60
    while answered < total:
        now = clock()
        while sent < total and start + sent / rate <= now:
            due = start + sent / rate
            sent += 1
            if idle:  # the connection idle longest: all stay in use (none reaches the keep-alive limit)
                idle.popleft().send(due)
            else:
                queue.append(due)  # every connection busy: it waits, and its latency from the schedule counts
        events = selector.select(0)
        for key, _ in events:
            connection = key.data
            if connection.receive():
                answered += 1
                if queue:
                    connection.send(queue.popleft())
                else:
                    idle.append(connection)
        if not events:  # nanosleep, not a 1 ms poll timeout: requests leave on time, not in bursts; a response
            # read a little late is timed by the kernel's stamp all the same
            time.sleep(min(max(0.0, start + sent / rate - clock()), MAX_SLEEP) if sent < total else MAX_SLEEP)
        if now > deadline:
            raise SystemExit(f"{url}: {total - answered} requests unanswered a minute after the run")
    for connection in pool:
        connection.sock.close()

    def ms(values: list[float], q: float) -> float:
        ordered = sorted(values)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000

    first = min(due for due, _, _ in latencies)
    windows: dict[int, list] = {}  # one a second: a stall from other load on the machine spoils one or two
    for due, _, latency in latencies:
        windows.setdefault(int(due - first), []).append(latency)
    window_p99s = sorted(ms(values, 0.99) for values in windows.values())
    scheduled = [latency for _, latency, _ in latencies]
    from_send = [latency for _, _, latency in latencies]
    return {"rate": rate, "requests": len(from_send), "errors": errors[0], "p50": ms(from_send, 0.5),
            "p99": ms(from_send, 0.99), "max": max(from_send) * 1000,
            "window_p99_median": window_p99s[len(window_p99s) // 2], "scheduled_p99": ms(scheduled, 0.99),
            "send_lag_p99": ms(lags, 0.99), "load": os.getloadavg()[0],
            "client_cpu_us": time.process_time() / len(from_send) * 1e6}


def start(argv: list[str], env: dict, port: int, log: Path, cwd: Path = ROOT, ready: str | None = None,
          base_env: dict | None = None) -> subprocess.Popen:
    """Start a server in its own session; return once it answers (GET ready answers 200 when given)."""
    from ml_service.deploy.smoke import wait_ready

    proc = subprocess.Popen(argv, env={**(os.environ if base_env is None else base_env), **env}, cwd=cwd,
                            stdout=open(log, "wb"), stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, 120) if "ml_service.serving" in argv else _wait_port(url, proc, ready)
    except BaseException:
        os.killpg(proc.pid, 9)
        raise
    return proc


def _wait_port(url: str, proc, ready: str | None = None, timeout: float = 180) -> None:
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"server exited: see its log ({proc.args})")
        try:
            urllib.request.urlopen(f"{url}{ready or ('/ping' if 'mlflow' in str(proc.args) else '')}", timeout=1)
            return
        except urllib.error.HTTPError:
            if ready is None:
                return  # it answers HTTP: it is up
            time.sleep(0.3)
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


@contextmanager
def running(argv: list[str], env: dict, log: Path, **start_options):
    """A server started with argv (its port from a free one, put in place of PORT) until the block ends:
    yields (process, base URL)."""
    port = free_port()
    proc = start([str(port) if a == "PORT" else a for a in argv], env, port, log, **start_options)
    try:
        yield proc, f"http://127.0.0.1:{port}"
    finally:
        stop(proc)


@contextmanager
def peer_running(spec: dict, log: Path):
    """A peer (serving_peers.peer_servers) started on a free port until the block ends: yields (process, base
    URL). Its environment has no PYTHONPATH (it imports nothing of ours)."""
    port = free_port()
    spec["cwd"].mkdir(parents=True, exist_ok=True)
    if "settings" in spec:  # MLServer: ports in settings.json
        (spec["cwd"] / "settings.json").write_text(json.dumps(spec["settings"](port, [free_port(), free_port()])))
    base_env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = start([str(port) if a == "PORT" else a for a in spec["argv"]], spec["env"], port, log, cwd=spec["cwd"],
                 ready=spec["ready"], base_env=base_env)
    try:
        yield proc, f"http://127.0.0.1:{port}"
    finally:
        stop(proc)


def compare_peers(args, tmp: Path, model_dir: Path, model_name: str, ours: list[str], ours_env: dict) -> None:
    """Ours against MLServer, KServe and BentoML: throughput, latency and server CPU a request on v2 and on
    each one's native route (wrk, best of --rounds interleaved runs, every server up throughout), then p99 at
    half of each peer's v2 peak, open loop, the peer and ours at the same rate with the same request."""
    row, columns = first_row(model_dir)
    row = list(row.values()) if isinstance(row, dict) else row
    servers = {}
    if not args.ours_only:
        servers = serving_peers.peer_servers(Path(args.peers), tmp / "peers", model_dir / "model.pkl", columns, row)
    if not servers and not args.ours_only:
        print(f"  peers: skipped (no environment under {args.peers}: bench/peers/build.sh {args.peers})")
        return
    v2 = serving_peers.v2_bodies(columns, row)
    infer = f"/v2/models/{model_name}/infer"
    ours_routes = {"/score": ("/score", json.dumps({"data": [row]})), "v2": (infer, v2["tensor"]),
                   "v2, an input a column": (infer, v2["columns"])}
    with ExitStack() as stack:
        up = {"ours": (*stack.enter_context(running(ours, ours_env, tmp / "ours-peers.log")), ours_routes)}
        for name, spec in servers.items():
            up[name] = (*stack.enter_context(peer_running(spec, tmp / f"{name}.log")), spec["routes"])
        scripts = {}
        for name, (_, base, routes) in up.items():
            for label, (path, body) in routes.items():
                scripts[name, label] = script = wrk_script(tmp / f"peer-{len(scripts)}.lua", body)
                wrk(f"{base}{path}", script, 2)  # warm-up (and a check: wrk stops the benchmark on an error)
        runs: dict[tuple, list] = {key: [] for key in scripts}
        for _ in range(args.rounds):
            for (name, label), script in scripts.items():
                proc, base, routes = up[name]
                runs[name, label].append({**wrk(f"{base}{routes[label][0]}", script, args.seconds, server=proc.pid),
                                          "load": os.getloadavg()[0]})
        results = {key: best(r) for key, r in runs.items()}
        paced: dict[str, list] = {}
        ours_base = up["ours"][1]
        for _ in range(args.rounds):
            for name in servers:
                _, base, routes = up[name]
                path, body = routes["v2"]
                half = wrk(f"{base}{path}", scripts[name, "v2"], PEAK_SECONDS)["rps"] / 2
                paced.setdefault(name, []).append((open_loop(f"{base}{path}", body, half, args.seconds),
                                                   open_loop(f"{ours_base}{infer}", v2["tensor"], half, args.seconds)))
    print_peers(args, results, paced, serving_peers.versions(Path(args.peers)))


def print_peers(args, results: dict, paced: dict, versions: dict) -> None:
    """The peers' table and the targets."""
    print(f"serving runtimes teams pick, same model, 1 worker each, all on 127.0.0.1, wrk -t1 -c{CONNECTIONS}, "
          f"{args.seconds}s a run, best of {args.rounds} interleaved runs; "
          + ", ".join(f"{peer} {version}" for peer, version in versions.items()))
    for (name, label), r in results.items():
        loads = ", ".join(f"{load:.1f}" for load in r["loads"])
        print(f"  {name:<9} {label:<48} {r['rps']:7.0f} req/s   p50 {r['p50']:7.2f} ms   p99 {r['p99']:7.2f} ms   "
              f"server CPU {r['cpu_us']:7.1f} us/req   load {loads}")
    peers = [name for name, _ in results if name != "ours"]
    fastest = max(peers, key=lambda n: results[n, "v2"]["rps"]) if peers else None
    score = results["ours", "/score"]
    for label in ("v2", "v2, an input a column"):
        mine = results["ours", label]
        if fastest:
            peer = results[fastest, "v2"]
            print(f"  ours ({label}) / fastest peer on v2 ({fastest}) = {mine['rps'] / peer['rps']:5.1f}x req/s, "
                  f"{peer['cpu_us'] / mine['cpu_us']:5.1f}x by server CPU a request (target >= 5x)")
        print(f"  ours ({label}) / ours (/score) = {mine['rps'] / score['rps']:5.0%} req/s, "
              f"{score['cpu_us'] / mine['cpu_us']:5.0%} by server CPU a request (target >= 80%)")
    for name, pairs in paced.items():
        theirs, mine = (sorted(pair[side]["p99"] for pair in pairs) for side in (0, 1))
        median = len(pairs) // 2
        print(f"  p99 at half {name}'s v2 peak (open loop, {OPEN_LOOP_CONNECTIONS} connections, the same v2 request): "
              f"{name} {theirs[median]:.2f} ms, ours {mine[median]:.2f} ms = {mine[median] / theirs[median]:.2f} of "
              f"theirs (target <= 0.20), medians of {len(pairs)} runs")
        for side, run in ((side, run) for pair in pairs for side, run in zip((name, "ours"), pair)):
            lagged = run["send_lag_p99"] > LAG_LIMIT_MS
            print(f"    {side:<9} at {run['rate']:6.0f} req/s: p50 {run['p50']:7.2f} ms, p99 {run['p99']:7.2f} ms, "
                  f"max {run['max']:7.1f} ms; median 1-second p99 {run['window_p99_median']:7.2f} ms; "
                  f"client lag p99 {run['send_lag_p99']:.2f} ms; errors {run['errors']}; load {run['load']:.1f}"
                  + (BUSY if lagged else ""))


def best(runs: list[dict]) -> dict:
    """The best of repeated runs: the lowest server CPU a request, the highest req/s (see the docstring)."""
    chosen = dict(min(runs, key=lambda r: r["cpu_us"] or float("inf")))
    chosen["rps"] = max(r["rps"] for r in runs)
    chosen["loads"] = [r["load"] for r in runs]
    return chosen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10, help="duration of each load run (default: %(default)s)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="runs of ours and of each ceiling, interleaved; the best is kept (default: %(default)s)")
    parser.add_argument("--peers", default=str(serving_peers.DEFAULT_VENVS),
                        help="where bench/peers/build.sh built the peers' environments (default: %(default)s)")
    parser.add_argument("--peers-only", action="store_true",
                        help="only ours against MLServer, KServe and BentoML (no MLflow, ceilings or image)")
    parser.add_argument("--ours-only", action="store_true",
                        help="only our own routes, interleaved: /score, v2 with one tensor, v2 with an input a "
                             "column (the v2 / /score ratio; no peers, MLflow, ceilings or image)")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk not found: apt-get install wrk")
    with tempfile.TemporaryDirectory(prefix="mlops-bench-") as tmp:
        tmp = Path(tmp)
        env, model_dir, tracking_uri, model_name, score_module = registered_model(tmp / "ws")
        body, mlflow_body = request_bodies(model_dir)
        score = wrk_script(tmp / "score.lua", body)
        ours_env = {"MODEL_DIR": str(model_dir), "MLOPS_MODEL_NAME": model_name, "MLOPS_MODEL_VERSION": "1",
                    "MLOPS_SCORE_MODULE": score_module or "ml_service.serving.pyfunc_score",
                    "MLOPS_COLLECT_DIR": str(tmp / "collected"), "MLOPS_WORKERS": "1"}
        ours = [sys.executable, "-m", "ml_service.serving", "--port", "PORT"]
        if args.peers_only or args.ours_only:
            compare_peers(args, tmp, model_dir, model_name, ours, ours_env)
            return
        uvicorn = [sys.executable, "-m", "uvicorn", "--port", "PORT", "--workers", "1", "--http", "httptools",
                   "--loop", "uvloop", "--no-access-log", "--log-level", "warning"]
        variants = {"ours": (ours, ours_env), "ceiling (raw ASGI)": (uvicorn + ["bench.ceiling_app:app"], {}),
                    "ceiling (Starlette)": (uvicorn + ["bench.ceiling_app:starlette_app"], {})}
        runs: dict[str, list] = {name: [] for name in variants}
        for _ in range(args.rounds):
            for name, (argv, variant_env) in variants.items():
                with running(argv, variant_env, tmp / "server.log") as (proc, base):
                    wrk(f"{base}/score", score, 2)  # warm-up
                    runs[name].append({**wrk(f"{base}/score", score, args.seconds, server=proc.pid),
                                       "load": os.getloadavg()[0]})
        results = {name: best(r) for name, r in runs.items()}

        # Each round: our peak now (what the CPU this machine spares us now allows), then ours and, through the
        # same client at the same rate, the raw ceiling (the floor the machine and client allow now) at half of it
        paced: dict[str, list] = {"ours": [], "ceiling (raw ASGI)": []}
        with running(ours, ours_env, tmp / "ours.log") as (_, base), \
                running(*variants["ceiling (raw ASGI)"], tmp / "ceiling.log") as (_, ceiling_base):
            wrk(f"{ceiling_base}/score", score, 2)
            for _ in range(args.rounds):
                half = wrk(f"{base}/score", score, PEAK_SECONDS)["rps"] / 2
                for name, url in (("ours", f"{base}/score"), ("ceiling (raw ASGI)", f"{ceiling_base}/score")):
                    paced[name].append(open_loop(url, body, half, args.seconds))

        workers = os.cpu_count() or 1
        if workers > 1:  # the image's setting: one worker a core, SO_REUSEPORT
            with running(ours + ["--workers", str(workers)], ours_env, tmp / "ours-workers.log") as (proc, base):
                wrk(f"{base}/score", score, 2)
                results[f"ours, {workers} workers"] = {
                    **wrk(f"{base}/score", score, args.seconds, connections=CONNECTIONS * 2),
                    "loads": [os.getloadavg()[0]]}

        mlflow = [sys.executable, "-m", "mlflow", "models", "serve", "-m", f"models:/{model_name}/1",
                  "--env-manager", "local", "-h", "127.0.0.1", "-p", "PORT", "-w", "1"]
        mlflow_env = {"MLFLOW_TRACKING_URI": tracking_uri,  # it starts `uvicorn` from PATH
                      "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"}
        with running(mlflow, mlflow_env, tmp / "mlflow.log") as (proc, base):
            invocations = wrk_script(tmp / "mlflow.lua", mlflow_body)
            wrk(f"{base}/invocations", invocations, 2)
            results["mlflow"] = {**wrk(f"{base}/invocations", invocations, args.seconds, server=proc.pid),
                                 "loads": [os.getloadavg()[0]]}

        print(f"serving benchmark: single-row requests, wrk -t1 -c{CONNECTIONS}, {args.seconds}s a run, "
              f"best of {args.rounds} interleaved runs for ours and the ceilings, 1 worker, {os.cpu_count()} cores")
        print("  server CPU a request: the server's own CPU time over the requests it served, which other load on "
              "the machine changes far less than req/s; load: the 1-minute load average after each run")
        for name, r in results.items():
            cpu = f"   server CPU {r['cpu_us']:6.1f} us/req" if r.get("cpu_us") else " " * 30
            loads = ", ".join(f"{load:.1f}" for load in r["loads"])
            print(f"  {name:<20} {r['rps']:8.0f} req/s   p50 {r['p50']:6.2f} ms   p99 {r['p99']:6.2f} ms{cpu}"
                  f"   load {loads}")
        ours_rps, cpu = results["ours"]["rps"], {name: r.get("cpu_us") for name, r in results.items()}
        print(f"  ours / mlflow               = {ours_rps / results['mlflow']['rps']:6.1f}x  (target >= 20x); "
              f"by server CPU a request: {cpu['mlflow'] / cpu['ours']:.1f}x")
        for name in ("ceiling (raw ASGI)", "ceiling (Starlette)"):
            print(f"  ours / {name:<20} = {ours_rps / results[name]['rps']:6.0%}   (target >= 60%); "
                  f"by server CPU a request: {cpu[name] / cpu['ours']:.0%}")
        many = [name for name in results if name.startswith("ours, ")]
        if many:
            print(f"  {many[0]} / 1 worker          = {results[many[0]]['rps'] / ours_rps:6.2f}x")
        for name, name_runs in paced.items():
            p99s = sorted(run["p99"] for run in name_runs)
            target = " (target <= 5 ms)" if name == "ours" else ": the floor this machine and client can measure"
            print(f"  p99 at half our peak (open loop, {OPEN_LOOP_CONNECTIONS} connections), {name} = "
                  f"{p99s[len(p99s) // 2]:.2f} ms, the median of {args.rounds} runs{target}")
            for run in name_runs:
                lagged = run["send_lag_p99"] > LAG_LIMIT_MS
                print(f"    run at {run['rate']:.0f} req/s: p50 {run['p50']:.2f} ms, p99 {run['p99']:.2f} ms (from the "
                      f"scheduled time {run['scheduled_p99']:.2f} ms), max {run['max']:.1f} ms; median of its "
                      f"1-second p99s {run['window_p99_median']:.2f} ms; client send lag p99 "
                      f"{run['send_lag_p99']:.2f} ms; load {run['load']:.1f}" + (BUSY if lagged else ""))
        failed = sum(run["errors"] for name_runs in paced.values() for run in name_runs)
        if failed:
            print(f"  open loop: {failed} requests failed")
        print(image_numbers(env, model_dir, tmp))
        compare_peers(args, tmp, model_dir, model_name, ours, ours_env)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--open-loop":  # the open-loop client's own process
        url, rate, seconds, connections = sys.argv[2], float(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
        print(json.dumps(_open_loop_client(url, rate, seconds, connections, sys.stdin.read().encode())))
    else:
        main()
