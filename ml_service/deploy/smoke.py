"""Smoke test of a scoring endpoint: the MLOpsPython payload, one v2 call, one malformed request."""
from __future__ import annotations

import json
import math
import os
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field

PAYLOAD = {"data": [[1, 2, 3, 4, 5, 6, 7, 8, 9, 10], [10, 9, 8, 7, 6, 5, 4, 3, 2, 1]]}


class SmokeTestError(Exception):
    """The endpoint failed the smoke test; the message says which check and why."""


@dataclass
class SmokeResult:
    """What the smoke test saw."""

    url: str
    checks: list[str] = field(default_factory=list)
    result: list[float] = field(default_factory=list)


def _request(url: str, method: str = "GET", body: bytes | None = None, headers: dict | None = None,
             timeout: float = 10.0) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def wait_ready(url: str, timeout_s: float) -> None:
    """Poll /v2/health/ready until it answers 200, for at most timeout_s."""
    deadline = time.monotonic() + timeout_s
    last = "no answer"
    while time.monotonic() < deadline:
        try:
            status, _ = _request(f"{url}/v2/health/ready", timeout=2)
            if status == 200:
                return
            last = f"HTTP {status}"
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError) as exc:
            last = str(getattr(exc, "reason", exc))
        time.sleep(0.25)
    raise SmokeTestError(f"{url} not ready after {timeout_s:.0f}s (last: {last})")


def smoke_test(url: str, key: str | None = None, timeout_s: float = 60.0) -> SmokeResult:
    """Run every check against url (e.g. http://127.0.0.1:8080); raise SmokeTestError on the first failure."""
    url = url.rstrip("/")
    result = SmokeResult(url)
    wait_ready(url, timeout_s)
    result.checks.append("ready")

    trace = f"00-{os.urandom(16).hex()}-{os.urandom(8).hex()}-01"
    headers = {"Content-Type": "application/json", "traceparent": trace}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    status, body = _request(f"{url}/score", "POST", json.dumps(PAYLOAD).encode(), headers)
    if status != 200:
        raise SmokeTestError(f"POST /score answered HTTP {status}: {body[:300]!r}")
    values = json.loads(body).get("result")
    if not (isinstance(values, list) and len(values) == 2
            and all(isinstance(v, (int, float)) and math.isfinite(v) for v in values)):
        raise SmokeTestError(f"POST /score: expected 'result' with 2 finite numbers, got {values!r}")
    result.result = values
    result.checks.append("score")

    status, body = _request(f"{url}/openapi.json")
    infer = [p for p in json.loads(body).get("paths", {}) if p.endswith("/infer")] if status == 200 else []
    if not infer:
        raise SmokeTestError("GET /openapi.json does not describe a v2 infer endpoint")
    tensor = {"inputs": [{"name": "input-0", "shape": [1, 10], "datatype": "FP64", "data": PAYLOAD["data"][0]}]}
    status, body = _request(f"{url}{infer[0]}", "POST", json.dumps(tensor).encode(), headers)
    outputs = json.loads(body).get("outputs") if status == 200 else None
    if not outputs or len(outputs[0].get("data", [])) != 1:
        raise SmokeTestError(f"POST {infer[0]} answered HTTP {status}: {body[:300]!r}")
    result.checks.append("v2 infer")

    status, body = _request(f"{url}/score", "POST", b'{"data": "not rows"}', headers)
    if not 400 <= status < 500:
        raise SmokeTestError(f"a malformed request got HTTP {status}, expected a 4xx")
    result.checks.append("malformed request refused")
    return result
