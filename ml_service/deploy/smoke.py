"""Smoke test of a scoring endpoint: rows to /score, the same rows through Open Inference Protocol v2, and one
malformed request.

The rows are the caller's payload (a model project's scoring/smoke.json) or the example the server
advertises for /score in its /openapi.json; the platform holds no model's numbers.
"""
from __future__ import annotations

import json
import math
import os
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field

from ml_service.errors import MLOpsError


class SmokeTestError(MLOpsError):
    """The endpoint failed the smoke test; the message says which check and why."""


@dataclass
class SmokeResult:
    """What the smoke test saw: the checks passed and the /score predictions."""

    url: str
    checks: list[str] = field(default_factory=list)
    result: list = field(default_factory=list)


def _request(url: str, method: str = "GET", body: bytes | None = None, headers: dict | None = None,
             timeout: float = 10.0) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _json(status: int, body: bytes, what: str) -> object:
    if status != 200:
        raise SmokeTestError(f"{what} answered HTTP {status}: {body[:300]!r}")
    try:
        return json.loads(body)
    except ValueError:
        raise SmokeTestError(f"{what} did not answer JSON: {body[:300]!r}") from None


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


def advertised_example(spec: dict) -> dict | None:
    """The request example an /openapi.json document gives for POST /score, if any."""
    try:
        example = spec["paths"]["/score"]["post"]["requestBody"]["content"]["application/json"]["example"]
    except (KeyError, TypeError):
        return None
    return example if isinstance(example, dict) else None


def _is_prediction(value: object) -> bool:
    if isinstance(value, bool) or isinstance(value, str):
        return True
    if isinstance(value, (int, float)):
        return math.isfinite(value)
    return isinstance(value, list) and bool(value) and all(_is_prediction(v) for v in value)


def v2_request(metadata: dict, rows: list) -> dict:
    """An inference request for rows (lists in column order, or objects) built from the model's metadata."""
    inputs = metadata.get("inputs") or []
    names = [i.get("name") for i in inputs]
    if len(inputs) == 1 and len(inputs[0].get("shape") or []) == 2 and inputs[0]["shape"][1] != 1:
        if any(isinstance(row, dict) for row in rows):
            raise SmokeTestError("the model takes one 2-D tensor, but the payload holds records")
        return {"inputs": [{"name": names[0], "shape": [len(rows), len(rows[0])],
                            "datatype": inputs[0].get("datatype", "FP64"), "data": [v for row in rows for v in row]}]}
    columns = {name: [] for name in names}
    for row in rows:
        values = [row.get(name) for name in names] if isinstance(row, dict) else row
        if len(values) != len(names):
            raise SmokeTestError(f"a payload row has {len(values)} values; the model metadata lists {len(names)} "
                                 "inputs")
        for name, value in zip(names, values):
            columns[name].append(value)
    return {"inputs": [{"name": i["name"], "shape": [len(rows)], "datatype": i.get("datatype", "FP64"),
                        "data": columns[i["name"]]} for i in inputs]}


def _same(a: object, b: object) -> bool:
    numbers = (int, float)
    if isinstance(a, float) or isinstance(b, float):
        return isinstance(a, numbers) and isinstance(b, numbers) and math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-9)
    return a == b


def smoke_test(url: str, key: str | None = None, timeout_s: float = 60.0, payload: dict | None = None) -> SmokeResult:
    """Run every check against url (e.g. http://127.0.0.1:8080); raise SmokeTestError on the first failure.

    Args:
        payload: the /score request, {"data": [rows or records]}; default: the example the server advertises.
    """
    url = url.rstrip("/")
    result = SmokeResult(url)
    wait_ready(url, timeout_s)
    result.checks.append("ready")

    trace = f"00-{os.urandom(16).hex()}-{os.urandom(8).hex()}-01"
    headers = {"Content-Type": "application/json", "traceparent": trace}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    spec = _json(*_request(f"{url}/openapi.json"), "GET /openapi.json")
    if payload is None:
        payload = advertised_example(spec)
        if payload is None:
            raise SmokeTestError("GET /openapi.json advertises no example for /score (the model has no signature "
                                 "or input example): pass a payload")
    rows = payload.get("data") if isinstance(payload, dict) else None
    if not isinstance(rows, list) or not rows:
        raise SmokeTestError(f'the payload must be {{"data": [row, ...]}} with at least one row, got {payload!r:.200}')

    answer = _json(*_request(f"{url}/score", "POST", json.dumps(payload).encode(), headers), "POST /score")
    values = answer.get("result") if isinstance(answer, dict) else None
    if not (isinstance(values, list) and len(values) == len(rows) and all(_is_prediction(v) for v in values)):
        raise SmokeTestError(f"POST /score: expected 'result' with {len(rows)} finite numbers or labels, "
                             f"got {values!r:.300}")
    result.result = values
    result.checks.append("score")

    infer = [p for p in spec.get("paths", {}) if p.startswith("/v2/models/") and p.endswith("/infer")]
    if not infer:
        raise SmokeTestError("GET /openapi.json does not describe a v2 infer endpoint")
    model_path = infer[0][:-len("/infer")]
    metadata = _json(*_request(f"{url}{model_path}", headers=headers), f"GET {model_path}")
    request = v2_request(metadata, rows)
    answer = _json(*_request(f"{url}{infer[0]}", "POST", json.dumps(request).encode(), headers), f"POST {infer[0]}")
    outputs = {o.get("name"): o for o in answer.get("outputs", []) if isinstance(o, dict)}
    predicted = (outputs.get("predict") or {}).get("data")
    expected = [x for v in values for x in (v if isinstance(v, list) else [v])]
    if not (isinstance(predicted, list) and len(predicted) == len(expected)):
        raise SmokeTestError(f"POST {infer[0]}: expected output 'predict' with {len(expected)} values, "
                             f"got {answer!r:.300}")
    if not all(_same(a, b) for a, b in zip(expected, predicted)):
        raise SmokeTestError(f"POST {infer[0]} predicted {predicted!r:.200}; /score predicted {values!r:.200} "
                             "for the same rows")
    result.checks.append("v2 infer")

    status, body = _request(f"{url}/score", "POST", b'{"data": "not rows"}', headers)
    if not 400 <= status < 500:
        raise SmokeTestError(f"a malformed request got HTTP {status}, expected a 4xx")
    result.checks.append("malformed request refused")
    return result
