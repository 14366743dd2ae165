"""The scoring service against clients that misbehave, as a real process on 127.0.0.1: bodies over the limit,
oversized and slow request heads, slowloris floods under a 1,024 open-file limit, a flood of large batches
against small requests, SIGTERM under load, kill -9 with data collection on.

CI runs the short forms; MLOPS_ADVERSARIAL_LONG=1 runs the long ones (1,500 half-open connections, longer
floods). Every loop is bounded in count; nothing here asserts on time: a test waits for an event (an answer, a
close, a readiness change) under a generous bound, and the latencies it measures are printed, not asserted
(bench/serving.py measures them). The exact timeouts are tested in process, on both sides of each boundary,
in test_protocol.py.
"""
import http.client
import json
import os
import signal
import socket
import threading
import time

import pytest

from tests.support.serving_process import scoring_server
from tests.support.rows_score import save_regressor

pytestmark = pytest.mark.integration
LONG = os.environ.get("MLOPS_ADVERSARIAL_LONG") == "1"
ROWS_SCORE = {"MLOPS_SCORE_MODULE": "tests.support.rows_score", "MLOPS_LOG_REQUESTS": "false"}
SMALL = json.dumps({"data": [[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]]}).encode()
JSON = {"Content-Type": "application/json"}


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return save_regressor(tmp_path_factory.mktemp("regressor"))


def _address(url: str) -> tuple[str, int]:
    host, port = url.removeprefix("http://").split(":")
    return host, int(port)


def _post(conn: http.client.HTTPConnection, body: bytes = SMALL) -> tuple[int, bytes, dict]:
    conn.request("POST", "/score", body=body, headers=JSON)
    response = conn.getresponse()
    return response.status, response.read(), {k.lower(): v for k, v in response.getheaders()}


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# --- limits a real client can read -------------------------------------------------------------------------

def test_a_body_over_the_limit_gets_a_413_the_client_reads(model, tmp_path):
    env = {**ROWS_SCORE, "MODEL_DIR": str(model), "MLOPS_MAX_BODY_BYTES": "100000"}
    with scoring_server(env, tmp_path / "server.log") as (proc, url):
        big = json.dumps({"data": [[1.5] * 10] * 60_000}).encode()  # about 3 MB, sent whole before reading
        for _ in range(3):
            conn = http.client.HTTPConnection(*_address(url), timeout=30)
            status, body, headers = _post(conn, big)
            assert status == 413 and "over the limit" in json.loads(body)["error"]
            assert headers["connection"] == "close"
            conn.close()
        conn = http.client.HTTPConnection(*_address(url), timeout=10)
        assert _post(conn)[0] == 200 and proc.poll() is None


def _raw(url: str, data: bytes, wait: float = 30.0) -> bytes:
    """Send data, then read until the server closes the connection (or wait passes: what came so far)."""
    with socket.create_connection(_address(url), timeout=wait) as sock:
        sock.sendall(data)
        chunks = []
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except (ConnectionResetError, socket.timeout):
            pass
        return b"".join(chunks)


def test_oversized_heads_get_431_and_slow_heads_408(model, tmp_path):
    env = {**ROWS_SCORE, "MODEL_DIR": str(model), "MLOPS_HEADER_TIMEOUT_SECONDS": "1"}
    with scoring_server(env, tmp_path / "server.log") as (_, url):
        head = b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\n" + b"X-Pad: " + b"a" * 20_000 + b"\r\n\r\n"
        assert _raw(url, head).startswith(b"HTTP/1.1 431 ")
        assert _raw(url, b"GET /v2/health/live?" + b"q" * 20_000 + b" HTTP/1.1\r\n\r\n").startswith(b"HTTP/1.1 431")
        assert _raw(url, b"POST /score HTTP/1.1\r\nHost: x\r\n").startswith(b"HTTP/1.1 408 ")
        assert _raw(url, b"") == b""  # a connection that sends nothing is closed, silently


def test_keep_alive_connections_stay_open_while_used_and_close_when_idle(model, tmp_path):
    """Keep-alive is enforced by the protocol's once-a-second sweep (no timer a request): a connection keeps
    serving requests, and once idle it is closed by the keep-alive time, the only limit that can close it here
    (the head timeout is a day). Both sides of the keep-alive boundary: test_protocol.py."""
    env = {**ROWS_SCORE, "MODEL_DIR": str(model), "MLOPS_KEEP_ALIVE_SECONDS": "1",
           "MLOPS_HEADER_TIMEOUT_SECONDS": "86400"}
    with scoring_server(env, tmp_path / "server.log") as (_, url):
        conn = http.client.HTTPConnection(*_address(url), timeout=30)
        assert _post(conn)[0] == 200
        sock = conn.sock
        for _ in range(8):  # all on the first connection
            assert _post(conn)[0] == 200 and conn.sock is sock
        assert sock.recv(1) == b""  # idle now: the server closes it (the 30 s socket timeout would raise)
        conn.close()


def test_405_names_allowed_methods_and_errors_carry_no_traceback(model, tmp_path):
    with scoring_server({**ROWS_SCORE, "MODEL_DIR": str(model)}, tmp_path / "server.log") as (_, url):
        conn = http.client.HTTPConnection(*_address(url), timeout=10)
        conn.request("DELETE", "/v2/health/live")
        response = conn.getresponse()
        assert response.status == 405 and response.getheader("Allow") == "GET, HEAD"
        response.read()
        for body in (b'{"data": [[' + b"1" * 401 + b',2,3,4,5,6,7,8,9,10]]}', b'{"data": [[1e308,1e308,1e308,'
                     b'1e308,1e308,1e308,1e308,1e308,1e308,1e308]]}', b"\xff\xfe", b"[" * 100_000):
            status, answer, _ = _post(conn, body)
            assert status in (400, 413, 422) and b"Traceback" not in answer and b"NaN" not in answer


# --- slowloris ----------------------------------------------------------------------------------------------

def _half_open(url: str, count: int) -> list[socket.socket]:
    sockets = []
    for _ in range(count):
        try:
            sock = socket.create_connection(_address(url), timeout=5)
            sock.sendall(b"POST /score HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n")
            sockets.append(sock)
        except OSError:  # refused or evicted at once: the flood is already at the cap
            pass
    return sockets


def test_slowloris_does_not_lock_out_a_well_behaved_client(model, tmp_path):
    """Half-open connections past the server's connection cap, under a 1,024 open-file limit: a client
    making new connections keeps getting answers (the longest-waiting half-open connection is evicted)."""
    connections, requests = (1500, 1000) if LONG else (300, 200)
    env = {**ROWS_SCORE, "MODEL_DIR": str(model), "MLOPS_HEADER_TIMEOUT_SECONDS": "60"}
    if not LONG:
        env["MLOPS_MAX_CONNECTIONS"] = "256"  # the short form: the flood still passes the cap
    with scoring_server(env, tmp_path / "server.log", nofile=1024) as (proc, url):
        attackers = _half_open(url, connections)
        latencies, failures = [], []
        try:
            for i in range(requests):
                if i % 10 == 0:  # keep the flood going: new half-open connections keep arriving
                    attackers += _half_open(url, 20)
                started = time.perf_counter()
                try:
                    conn = http.client.HTTPConnection(*_address(url), timeout=10)
                    status = _post(conn)[0]
                    conn.close()
                    if status != 200:
                        failures.append(status)
                except OSError as exc:
                    failures.append(repr(exc))
                latencies.append(time.perf_counter() - started)
        finally:
            for sock in attackers:
                sock.close()
        assert proc.poll() is None
        assert not failures and len(latencies) == requests, failures[:5]
        p99 = _percentile(latencies, 0.99)
        print(f"slowloris: {len(attackers)} half-open connections, {requests} requests, p99 {p99 * 1000:.1f} ms")


# --- fairness: a flood of large batches against small requests ------------------------------------------------

def _small_requests(url: str, count: int) -> list[float]:
    conn = http.client.HTTPConnection(*_address(url), timeout=30)
    latencies = []
    for _ in range(count):
        started = time.perf_counter()
        assert _post(conn)[0] == 200
        latencies.append(time.perf_counter() - started)
    conn.close()
    return latencies


def _wait_for(condition, what: str, bound: float = 60.0) -> None:
    """Return once condition() is true; fail naming what did not happen within a generous bound."""
    deadline = time.monotonic() + bound
    while not condition():
        assert time.monotonic() < deadline, f"{what} did not happen"
        time.sleep(0.01)


def test_large_batches_do_not_starve_small_requests(model, tmp_path):
    """Every small request is answered while large batches flood the server. That they are answered while a
    large batch is being scored (not after it) is tested by events in test_hardening.py; the latencies are
    printed here, and measured by bench/serving.py."""
    count = 2000 if LONG else 300
    big = json.dumps({"data": [[2] + [1.5] * 9] * 18_000}).encode()  # about 0.9 MB
    env = {**ROWS_SCORE, "MODEL_DIR": str(model), "MLOPS_MAX_ROWS": "20000"}
    with scoring_server(env, tmp_path / "server.log") as (_, url):
        alone = _small_requests(url, count)
        stop, flooded = threading.Event(), []

        def flood():
            conn = http.client.HTTPConnection(*_address(url), timeout=60)
            while not stop.is_set():
                status, _, _ = _post(conn, big)
                flooded.append(status)

        threads = [threading.Thread(target=flood, daemon=True) for _ in range(3)]
        for thread in threads:
            thread.start()
        _wait_for(lambda: flooded, "a large batch answered")
        try:
            during = _small_requests(url, count)
        finally:
            stop.set()
            for thread in threads:
                thread.join(60)
        assert len(during) == count and flooded and set(flooded) == {200}
        p99_alone, p99_during = _percentile(alone, 0.99), _percentile(during, 0.99)
        print(f"fairness: p99 alone {p99_alone * 1000:.1f} ms, under {len(flooded)} large batches "
              f"{p99_during * 1000:.1f} ms")


# --- shutdown -------------------------------------------------------------------------------------------------

def test_sigterm_under_load_fails_no_request(model, tmp_path):
    """SIGTERM with keep-alive clients busy and a request half sent: every request gets its answer; a client
    sees `Connection: close` (readiness is 503) and moves on, as it would behind a Kubernetes Service."""
    env = {**ROWS_SCORE, "MODEL_DIR": str(model), "MLOPS_DRAIN_SECONDS": "1.5"}
    with scoring_server(env, tmp_path / "server.log") as (proc, url):
        results, errors, stop = [], [], threading.Event()

        def client():
            conn = http.client.HTTPConnection(*_address(url), timeout=30)
            try:
                while not stop.is_set():
                    status, _, headers = _post(conn)
                    results.append(status)
                    if headers.get("connection") == "close":
                        return  # taken out of the endpoints: send nothing more here
            except OSError as exc:
                errors.append(repr(exc))

        threads = [threading.Thread(target=client, daemon=True) for _ in range(8)]
        for thread in threads:
            thread.start()
        slow = socket.create_connection(_address(url), timeout=30)
        slow.sendall(b"POST /score HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: %d\r\n\r\n" % len(SMALL) + SMALL[:10])
        idle = http.client.HTTPConnection(*_address(url), timeout=30)
        assert _post(idle)[0] == 200  # then idle, kept alive
        _wait_for(lambda: len(results) >= 3 * len(threads), "every client busy")
        proc.send_signal(signal.SIGTERM)
        _wait_for(lambda: _readiness(url) == 503, "readiness 503 after SIGTERM")
        status, _, headers = _post(idle)  # the idle keep-alive connection is answered, then closed
        assert status == 200 and headers["connection"] == "close"
        slow.sendall(SMALL[10:])
        answer = slow.recv(65536)
        slow.close()
        for thread in threads:
            thread.join(30)
        stop.set()
        assert answer.startswith(b"HTTP/1.1 200 ")
        assert not errors and results and set(results) == {200}, (errors[:3], set(results))
        assert proc.wait(30) == 0


def _readiness(url: str) -> int:
    """The status of GET /v2/health/ready on a new connection."""
    ready = http.client.HTTPConnection(*_address(url), timeout=10)
    try:
        ready.request("GET", "/v2/health/ready")
        return ready.getresponse().status
    finally:
        ready.close()


# --- data collection: what a kill -9 loses ---------------------------------------------------------------------

def test_kill_9_loses_at_most_the_last_flush_interval(model, tmp_path):
    collect = tmp_path / "collected"
    env = {**ROWS_SCORE, "MODEL_DIR": str(model), "MLOPS_COLLECT_DIR": str(collect),
           "MLOPS_COLLECT_FLUSH_SECONDS": "0.2", "MLOPS_COLLECT_MAX_BYTES": "2000", "MLOPS_COLLECT_KEEP_FILES": "3"}
    with scoring_server(env, tmp_path / "server.log") as (proc, url):
        conn = http.client.HTTPConnection(*_address(url), timeout=10)
        for _ in range(100):
            status, _, headers = _post(conn)
            assert status == 200
        last = headers["x-request-id"]
        deadline = time.monotonic() + 60  # wait for the event (the last record flushed), not for a duration
        while not _collected(collect, last):
            assert time.monotonic() < deadline, "the last request's record never reached the disk"
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    files = sorted(collect.glob("*.jsonl"))
    lines = [line for f in files for line in f.read_text().splitlines()]
    assert 1 <= len(files) <= 3 and all(json.loads(line)["predictions"] for line in lines)
    newest = files[-1].read_text().splitlines()
    assert newest and len(lines) < 100  # older files were deleted (retention), the newest is complete
    assert json.loads(newest[-1]) and all(f.stat().st_size <= 2000 for f in files)


def _collected(folder, request_id: str) -> bool:
    """True when a collected file holds the record of request_id (files may rotate away while read)."""
    for path in folder.glob("*.jsonl"):
        try:
            if request_id in path.read_text():
                return True
        except FileNotFoundError:
            continue
    return False


def _children(pid: int) -> set[int]:
    found = set()
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/children") as handle:
            found.update(int(child) for child in handle.read().split())
    return found


def _serving_pid(server_port: int, client_port: int, pids: set[int]) -> int | None:
    """The process (of pids) holding the server side of the connection from client_port (from /proc)."""
    inode = None
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as handle:
            for line in list(handle)[1:]:
                fields = line.split()
                local, remote = fields[1].rsplit(":", 1)[1], fields[2].rsplit(":", 1)[1]
                if int(local, 16) == server_port and int(remote, 16) == client_port:
                    inode = fields[9]
    for pid in pids:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") == f"socket:[{inode}]":
                    return pid
            except OSError:
                continue
    return None


def test_sigterm_drains_every_worker_of_a_multi_worker_server(model, tmp_path):
    """Two SO_REUSEPORT workers under their supervising process: SIGTERM to it drains both. Keep-alive clients
    served by either worker get every answer, then `Connection: close`; readiness is 503 on both; every process
    exits 0."""
    env = {**ROWS_SCORE, "MODEL_DIR": str(model), "MLOPS_DRAIN_SECONDS": "1.5"}
    with scoring_server(env, tmp_path / "server.log", workers=2) as (proc, url):
        host, port = _address(url)
        workers = _children(proc.pid)
        assert len(workers) == 2
        connections, served_by = [], {}
        while len(set(served_by.values())) < 2 and len(connections) < 64:  # clients on both workers
            conn = http.client.HTTPConnection(host, port, timeout=30)
            assert _post(conn)[0] == 200
            connections.append(conn)
            served_by[conn] = _serving_pid(port, conn.sock.getsockname()[1], workers)
        assert set(served_by.values()) == workers
        results, errors, closed = [], [], []

        def client(conn):
            try:
                for _ in range(10_000):
                    status, _, headers = _post(conn)
                    results.append(status)
                    if headers.get("connection") == "close":
                        closed.append(served_by[conn])
                        return
                    time.sleep(0.005)
            except OSError as exc:
                errors.append(repr(exc))

        threads = [threading.Thread(target=client, args=(conn,), daemon=True) for conn in connections]
        for thread in threads:
            thread.start()
        _wait_for(lambda: len(results) >= 2 * len(connections), "every client busy")
        proc.send_signal(signal.SIGTERM)
        readiness = []  # new connections, spread by the kernel over both workers: 12 answers in a row are 503
        _wait_for(lambda: readiness.append(_readiness(url)) or readiness[-12:] == [503] * 12,
                  "readiness 503 on every worker after SIGTERM")
        for thread in threads:
            thread.join(30)
        assert not errors and results and set(results) == {200}, (errors[:3], set(results))
        assert sorted(closed) == sorted(served_by[c] for c in connections)  # every client was told, by its worker
        assert proc.wait(30) == 0
        assert not any(os.path.exists(f"/proc/{pid}") for pid in workers)  # both exited, and were waited for
