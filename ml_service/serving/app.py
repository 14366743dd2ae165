"""The scoring ASGI app: /score, Open Inference Protocol v2, /metrics, /openapi.json, /docs.

A plain ASGI callable (no framework on the request path) so that hosting a model costs little
more than the model itself. Every bad input gets a 4xx JSON error naming the problem; an
exception inside run() is a 500 with a request id and no traceback; no request stops the server.
"""
from __future__ import annotations

import asyncio
import gc
import importlib
import json
import math
import os
import sys
import time
import traceback

from ml_service.serving import openapi
from ml_service.serving.auth import authorized
from ml_service.serving.collector import Collector
from ml_service.serving.config import ServingSettings, load_serving_settings
from ml_service.serving.metrics import Metrics

JSON = [(b"content-type", b"application/json")]
PUBLIC = {"/v2/health/live", "/v2/health/ready", "/metrics", "/openapi.json", "/docs"}
NUMBER_TYPES = (float, int)
LOG_FLUSH_SECONDS = 0.2
V2_TYPES = {"FP64", "FP32", "FP16", "INT64", "INT32", "INT16", "INT8", "UINT64", "UINT32", "UINT16", "UINT8"}


class HTTPError(Exception):
    """A request that cannot be served; status and message go to the client."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def check_matrix(data, n_features: int | None, where: str = "data") -> list:
    """A non-empty list of rows of finite numbers, each of n_features (when known)."""
    if not isinstance(data, list):
        raise HTTPError(422, f"'{where}' must be a list of rows, got {type(data).__name__}")
    if not data:
        raise HTTPError(422, f"'{where}' is empty: send at least one row")
    for i, row in enumerate(data):
        if type(row) is not list:
            raise HTTPError(422, f"{where}[{i}] must be a list of numbers, got {type(row).__name__}")
        if n_features is not None and len(row) != n_features:
            raise HTTPError(422, f"{where}[{i}] has {len(row)} features; the model expects {n_features}")
        for j, value in enumerate(row):
            if type(value) not in NUMBER_TYPES:
                raise HTTPError(422, f"{where}[{i}][{j}] is not a number: {value!r}")
        if not math.isfinite(sum(row)):  # fast path; find the culprit only when something is off
            for j, value in enumerate(row):
                if not math.isfinite(value):
                    raise HTTPError(422, f"{where}[{i}][{j}] is not finite: {value!r}")
    return data


class ScoringApp:
    """Hosts one score module; call it as an ASGI app."""

    def __init__(self, settings: ServingSettings):
        self.settings = settings
        self.scorer = importlib.import_module(settings.score_module)
        self.n_features = getattr(self.scorer, "N_FEATURES", None)
        self.scorer.init(settings.model_dir)
        self.ready = True
        self.metrics = Metrics(settings.model_name, settings.model_version)
        self.collector = None
        if settings.collect_dir:
            self.collector = Collector(settings.collect_dir, settings.collect_max_bytes,
                                       on_drop=self.metrics.collector_dropped.inc)
        self.routes = {
            "/score": self._score,
            "/v2/health/live": self._live,
            "/v2/health/ready": self._ready,
            "/v2": self._server_metadata,
            "/metrics": self._metrics,
            "/openapi.json": self._openapi,
            "/docs": self._docs,
        }
        self._model_prefix = "/v2/models/"
        self._log_lines: list[str] = []
        self._flusher = None

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive, send):
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                gc.freeze()  # the loaded model and libraries are long-lived: keep them out of every GC pass
                self._flusher = asyncio.get_running_loop().create_task(self._flush_logs_forever())
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self._flusher is not None:
                    self._flusher.cancel()
                self.flush_logs()
                if self.collector is not None:
                    self.collector.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _flush_logs_forever(self):
        while True:
            await asyncio.sleep(LOG_FLUSH_SECONDS)
            self.flush_logs()

    def flush_logs(self) -> None:
        """Write the buffered request log lines (one JSON object a line) to stdout."""
        if self._log_lines:
            lines, self._log_lines = self._log_lines, []
            sys.stdout.write("".join(lines))
            sys.stdout.flush()

    async def _http(self, scope, receive, send):
        started = time.perf_counter()
        headers = dict(scope["headers"])
        request_id = (headers.get(b"x-request-id") or b"").decode("latin-1")[:128] or os.urandom(16).hex()
        path = scope["path"]
        route = path
        log = {"request_id": request_id, "traceparent": headers.get(b"traceparent", b"").decode("latin-1")[:128]}
        try:
            handler = self.routes.get(path)
            if handler is None and path.startswith(self._model_prefix):
                handler, route = self._model_route, "/v2/models/{name}"
            if handler is None:
                raise HTTPError(404, f"no such endpoint: {path}")
            if path not in PUBLIC and not authorized(headers.get(b"authorization"), self.settings.api_keys):
                raise HTTPError(401, "unauthorized")
            status, body, content_type = await handler(scope, receive, headers, log)
        except HTTPError as exc:
            status, content_type = exc.status, JSON
            body = json.dumps({"error": exc.message, "request_id": request_id}).encode()
            log["error"] = exc.message
        except Exception as exc:  # a failure inside run(): logged here, never sent to the client
            status, content_type = 500, JSON
            body = json.dumps({"error": "internal error while scoring", "request_id": request_id}).encode()
            log["error"] = f"{type(exc).__name__}: {exc}"
            traceback.print_exc(file=sys.stderr)
        response_headers = content_type + [(b"x-request-id", request_id.encode()),
                                           (b"content-length", str(len(body)).encode())]
        if status == 401:
            response_headers.append((b"www-authenticate", b"Bearer"))
        await send({"type": "http.response.start", "status": status, "headers": response_headers})
        await send({"type": "http.response.body", "body": body})
        seconds = time.perf_counter() - started
        predictions = log.get("predictions")
        self.metrics.observe(route, status, seconds, len(predictions) if predictions else 0)
        if self.settings.log_requests and route not in PUBLIC:
            self._log(log, path, status, seconds)

    def _log(self, log: dict, path: str, status: int, seconds: float) -> None:
        predictions = log.get("predictions")
        if predictions and len(predictions) > 100:
            log["predictions"] = predictions[:100]
            log["predictions_truncated"] = True
        log.pop("inputs", None)
        log.update(path=path, status=status, model=self.settings.model_name,
                   model_version=self.settings.model_version, latency_ms=round(seconds * 1000, 3))
        self._log_lines.append(json.dumps(log, separators=(",", ":")) + "\n")
        if self._flusher is None or len(self._log_lines) >= 1000:  # no event loop task (tests), or a burst
            self.flush_logs()

    async def _read_json(self, scope, receive, headers) -> object:
        if scope["method"] != "POST":
            raise HTTPError(405, f"{scope['method']} is not allowed here: use POST")
        content_type = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
        if content_type != b"application/json":
            shown = content_type.decode("latin-1") or "none"
            raise HTTPError(415, f"content type must be application/json, got {shown}")
        limit = self.settings.max_body_bytes
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise HTTPError(413, f"request body of {int(declared)} bytes is over the limit of {limit}")
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise HTTPError(400, "client disconnected before sending the whole body")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise HTTPError(413, f"request body is over the limit of {limit} bytes")
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        if not body:
            raise HTTPError(400, "empty request body: send a JSON object")
        try:
            return json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise HTTPError(400, f"invalid JSON: {exc}") from None
        except RecursionError:
            raise HTTPError(400, "invalid JSON: nested too deeply") from None

    def _predict(self, rows: list, log: dict, where: str) -> list:
        check_matrix(rows, self.n_features, where)
        result = self.scorer.run(rows)
        result = [float(v) for v in result]
        if len(result) != len(rows):
            raise RuntimeError(f"run() returned {len(result)} predictions for {len(rows)} rows")
        log["predictions"] = result
        if self.collector is not None:
            self.collector.collect({"time": time.time(), "request_id": log["request_id"],
                                    "model_version": self.settings.model_version, "inputs": rows,
                                    "predictions": result})
        return result

    async def _score(self, scope, receive, headers, log):
        payload = await self._read_json(scope, receive, headers)
        if not isinstance(payload, dict) or "data" not in payload:
            raise HTTPError(422, 'expected a JSON object {"data": [[...], ...]}')
        result = self._predict(payload["data"], log, "data")
        return 200, json.dumps({"result": result}).encode(), JSON

    async def _live(self, scope, receive, headers, log):
        return 200, b'{"live":true}', JSON

    async def _ready(self, scope, receive, headers, log):
        return (200, b'{"ready":true}', JSON) if self.ready else (503, b'{"ready":false}', JSON)

    async def _server_metadata(self, scope, receive, headers, log):
        body = {"name": "mlops-scoring", "version": "1", "extensions": []}
        return 200, json.dumps(body).encode(), JSON

    async def _metrics(self, scope, receive, headers, log):
        return 200, self.metrics.render(), [(b"content-type", self.metrics.content_type.encode())]

    async def _openapi(self, scope, receive, headers, log):
        spec = openapi.spec(self.settings.model_name, self.n_features, self.settings.auth_enabled)
        return 200, json.dumps(spec).encode(), JSON

    async def _docs(self, scope, receive, headers, log):
        return 200, openapi.DOCS_HTML.encode(), [(b"content-type", b"text/html; charset=utf-8")]

    async def _model_route(self, scope, receive, headers, log):
        rest = scope["path"][len(self._model_prefix):].strip("/")
        name, _, action = rest.partition("/")
        if name != self.settings.model_name:
            raise HTTPError(404, f"no model named '{name}' here (this server hosts '{self.settings.model_name}')")
        if action in ("", f"versions/{self.settings.model_version}"):
            return 200, json.dumps(self._model_metadata()).encode(), JSON
        if action == "ready":
            return await self._ready(scope, receive, headers, log)
        if action in ("infer", f"versions/{self.settings.model_version}/infer"):
            return await self._infer(scope, receive, headers, log)
        raise HTTPError(404, f"no such endpoint: {scope['path']}")

    def _model_metadata(self) -> dict:
        shape = [-1, self.n_features if self.n_features is not None else -1]
        return {"name": self.settings.model_name, "versions": [self.settings.model_version], "platform": "sklearn",
                "inputs": [{"name": "input-0", "datatype": "FP64", "shape": shape}],
                "outputs": [{"name": "predict", "datatype": "FP64", "shape": [-1]}]}

    async def _infer(self, scope, receive, headers, log):
        payload = await self._read_json(scope, receive, headers)
        tensor = _v2_input(payload)
        rows = _v2_rows(tensor)
        result = self._predict(rows, log, "inputs[0].data")
        body = {"model_name": self.settings.model_name, "model_version": self.settings.model_version,
                "id": payload.get("id", log["request_id"]),
                "outputs": [{"name": "predict", "datatype": "FP64", "shape": [len(result)], "data": result}]}
        return 200, json.dumps(body).encode(), JSON


def _v2_input(payload) -> dict:
    if not isinstance(payload, dict) or not isinstance(payload.get("inputs"), list) or not payload["inputs"]:
        raise HTTPError(422, 'expected {"inputs": [{"name", "shape", "datatype", "data"}]}')
    if len(payload["inputs"]) != 1:
        raise HTTPError(422, f"this model takes one input tensor, got {len(payload['inputs'])}")
    tensor = payload["inputs"][0]
    if not isinstance(tensor, dict):
        raise HTTPError(422, "inputs[0] must be an object")
    missing = [k for k in ("name", "shape", "datatype", "data") if k not in tensor]
    if missing:
        raise HTTPError(422, f"inputs[0] is missing {', '.join(missing)}")
    if tensor["datatype"] not in V2_TYPES:
        raise HTTPError(422, f"inputs[0].datatype {tensor['datatype']!r} is not numeric")
    return tensor


def _v2_rows(tensor: dict) -> list:
    shape, data = tensor["shape"], tensor["data"]
    if not (isinstance(shape, list) and len(shape) == 2 and all(isinstance(d, int) and d >= 0 for d in shape)):
        raise HTTPError(422, f"inputs[0].shape must be [rows, features], got {shape!r}")
    if not isinstance(data, list):
        raise HTTPError(422, "inputs[0].data must be a list")
    if data and not isinstance(data[0], list):  # flat, row-major, as the protocol allows
        rows, width = shape
        if len(data) != rows * width:
            raise HTTPError(422, f"inputs[0].data has {len(data)} values; shape {shape} needs {rows * width}")
        data = [data[i * width:(i + 1) * width] for i in range(rows)]
    if len(data) != shape[0]:
        raise HTTPError(422, f"inputs[0].data has {len(data)} rows; shape says {shape[0]}")
    return data


def create_app() -> ScoringApp:
    """App factory for uvicorn: settings from the environment."""
    return ScoringApp(load_serving_settings())
