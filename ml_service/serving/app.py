"""The scoring ASGI app: /score, Open Inference Protocol v2, /metrics, /openapi.json, /docs.

A plain ASGI callable (no framework on the request path) so that hosting a model costs little
more than the model itself. Requests are checked against the model's signature (schema.py) before
the score module's run() sees them. Every bad input gets a 4xx JSON error naming the problem; an
exception inside run() is a 500 with a request id and no traceback; no request stops the server.
"""
from __future__ import annotations

import asyncio
import gc
import importlib
import itertools
import json
import os
import sys
import time
import traceback
from concurrent.futures import ThreadPoolExecutor

from ml_service.serving import binary, jsoncodec, openapi, schema
from ml_service.serving.auth import authorized
from ml_service.serving.collector import Collector
from ml_service.serving.config import ServingConfigError, ServingSettings, load_serving_settings
from ml_service.serving.metrics import UNMATCHED, Metrics
from ml_service.serving.errors import HTTPError
from ml_service.serving.jsoncodec import COMPACT
from ml_service.serving.results import predictions
from ml_service.serving.schema import InputError
from ml_service.serving.v2 import V2

JSON = [(b"content-type", b"application/json")]
CLOSE = [(b"connection", b"close")]  # after a refused body: the protocol lingers so the client reads the answer
# Paths answered without a key when keys are set (every other path, known or not, is a 401 without one: a
# client without a key learns nothing of which paths or methods exist). Health and metrics for probes and
# scrapers; /openapi.json and /docs for clients and the deploy smoke tests (docs/serving.md, "Authentication").
PUBLIC = {"/v2/health/live", "/v2/health/ready", "/metrics", "/openapi.json", "/docs"}
ENCODED = "predictions as JSON"  # a request's log entry for its predictions as encoded once (never logged as is)
GET = ("GET", "HEAD")
POST = ("POST",)
LOG_FLUSH_SECONDS = 0.2
INPUT_KINDS = ("frame", "rows")
# Young-generation collections every 10,000 net allocations instead of 700: a request's objects die by
# reference count, so a pass finds little, and fewer passes cost a one-row request about 1 us less (7%).
GC_THRESHOLD = 10_000


class ScoringApp:
    """Hosts one score module; call it as an ASGI app."""

    def __init__(self, settings: ServingSettings):
        self.settings = settings
        self.scorer = importlib.import_module(settings.score_module)
        self.input = getattr(self.scorer, "INPUT", "frame")
        if self.input not in INPUT_KINDS:
            raise ServingConfigError(f"{settings.score_module}.INPUT must be 'frame' or 'rows', got {self.input!r}")
        model_dir = schema.resolve_model_dir(settings.model_dir)
        mlmodel = schema.read_mlmodel(model_dir)
        self.schema = schema.load_schema(mlmodel)
        self.scorer.init(model_dir)
        self.v2 = V2(self.schema, settings.model_name, settings.model_version, schema.platform(mlmodel),
                     schema.output_datatype(mlmodel), getattr(self.scorer, "CLASSES", None))
        example = schema.input_example(model_dir, mlmodel, self.schema)
        self._openapi_body = json.dumps(openapi.spec(settings.model_name, self.schema, example, self.v2.outputs,
                                                     settings.auth_enabled)).encode()
        self._metadata_body = json.dumps(self.v2.metadata).encode()
        self.ready = True
        self.draining = False
        self._executor = ThreadPoolExecutor(settings.scoring_threads, thread_name_prefix="scoring")
        self.metrics = Metrics(settings.model_name, settings.model_version)
        self.collector = None
        if settings.collect_dir:
            self.collector = Collector(settings.collect_dir, settings.collect_max_bytes,
                                       on_drop=self.metrics.collector_dropped.inc,
                                       keep_files=settings.collect_keep_files, flush_s=settings.collect_flush_s)
        self.routes = {  # path: (handler, methods); every other path is "unmatched" in metrics
            "/score": (self._score, POST),
            "/v2/health/live": (self._live, GET),
            "/v2/health/ready": (self._ready, GET),
            "/v2": (self._server_metadata, GET),
            "/metrics": (self._metrics, GET),
            "/openapi.json": (self._openapi, GET),
            "/docs": (self._docs, GET),
        }
        self._model_prefix = "/v2/models/"
        # this model's own paths, resolved once: _model_route's answer for each, without its parsing a request
        model_paths = [f"{self._model_prefix}{settings.model_name}{tail}" for tail in
                       ("", "/ready", "/infer", f"/versions/{settings.model_version}",
                        f"/versions/{settings.model_version}/ready", f"/versions/{settings.model_version}/infer")]
        self._model_routes = {path: self._model_route(path) for path in model_paths}
        prefix, counter = os.urandom(8).hex(), itertools.count()  # unique ids without a system call a request
        self._new_request_id = lambda: f"{prefix}{next(counter):016x}"
        self._log_lines: list[str] = []
        self._flusher = None
        # read on every request: plain attributes, and the log line's constant end written once
        self._keys = settings.api_keys
        self._log_requests = settings.log_requests
        self._offload_bytes = settings.offload_bytes
        self._log_tail = (f',"model":{jsoncodec.string(settings.model_name)}'
                          f',"model_version":{jsoncodec.string(settings.model_version)},"latency_ms":')

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
                gc.set_threshold(GC_THRESHOLD, *gc.get_threshold()[1:])
                self._flusher = asyncio.get_running_loop().create_task(self._flush_logs_forever())
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self._flusher is not None:
                    self._flusher.cancel()
                self.flush_logs()
                self._executor.shutdown(wait=True)
                if self.collector is not None:
                    self.collector.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    def begin_drain(self) -> None:
        """Shutdown has begun: readiness answers 503 and every response closes its connection."""
        self.ready = False
        self.draining = True

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
        request_id = headers.get(b"x-request-id")
        request_id = request_id.decode("latin-1")[:128] if request_id else self._new_request_id()
        path = scope["path"]
        route = UNMATCHED
        log = {"request_id": request_id, "traceparent": headers.get(b"traceparent", b"").decode("latin-1")[:128]}
        extra: list = []
        try:
            handler, methods = self.routes.get(path) or (None, None)
            if handler is not None:
                route = path
            elif path.startswith(self._model_prefix):
                handler, methods, route = self._model_routes.get(path) or self._model_route(path)
            if self._keys and path not in PUBLIC and not authorized(headers.get(b"authorization"), self._keys):
                raise HTTPError(401, "unauthorized", [(b"www-authenticate", b"Bearer")])  # before 404/405: no probing
            if handler is None:
                raise HTTPError(404, "no such endpoint")
            if scope["method"] not in methods:
                raise HTTPError(405, f"{scope['method']} is not allowed here: use {' or '.join(methods)}",
                                [(b"allow", ", ".join(methods).encode())])
            status, body, content_type = await handler(scope, receive, headers, log)
        except (HTTPError, InputError) as exc:
            status, content_type = getattr(exc, "status", 422), JSON
            message = str(exc)
            body = json.dumps({"error": message, "request_id": request_id}).encode()
            log["error"] = message
            extra = getattr(exc, "headers", extra)
        except Exception as exc:  # a failure inside run(): logged here, never sent to the client
            status, content_type = 500, JSON
            body = json.dumps({"error": "internal error while scoring", "request_id": request_id}).encode()
            log["error"] = f"{type(exc).__name__}: {exc}"
            traceback.print_exc(file=sys.stderr)
        response_headers = [*content_type, (b"x-request-id", request_id.encode()),
                            (b"content-length", str(len(body)).encode()), *extra]
        if self.draining:
            response_headers.append((b"connection", b"close"))
        await send({"type": "http.response.start", "status": status, "headers": response_headers})
        await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else body})
        seconds = time.perf_counter() - started
        predictions = log.get("predictions")
        self.metrics.observe(route, status, seconds, len(predictions) if predictions else 0)
        if self._log_requests and path not in PUBLIC:
            self._log(log, path, status, seconds)

    def _log(self, log: dict, path: str, status: int, seconds: float) -> None:
        """One JSON line: the request's own fields (id, traceparent, error), path, status, predictions (the first
        100), model, model_version, latency_ms."""
        predictions = log.pop("predictions", None)
        encoded = log.pop(ENCODED, None)
        if predictions and len(predictions) > 100:
            log["predictions_truncated"] = True
            encoded = COMPACT(predictions[:100])
        log["path"] = path
        log["status"] = status
        line = COMPACT(log)[:-1] if encoded is None else f'{COMPACT(log)[:-1]},"predictions":{encoded}'
        self._log_lines.append(f"{line}{self._log_tail}{round(seconds * 1000, 3)!r}}}\n")
        if self._flusher is None or len(self._log_lines) >= 1000:  # no event loop task (tests), or a burst
            self.flush_logs()

    async def _read_body(self, receive, headers, untyped_is_json: bool = False, raw_tensors: bool = False) -> bytes:
        """The request body, checked: content type and encoding, size, time to arrive (the protocol times out
        a slow body: 408)."""
        content_type = headers.get(b"content-type", b"")
        if content_type != b"application/json":
            content_type = content_type.split(b";")[0].strip().lower()
            if raw_tensors and content_type in (b"", b"application/octet-stream"):
                pass  # the binary tensor extension: JSON, then raw tensor data
            elif content_type != b"application/json" and not (untyped_is_json and not content_type):
                shown = content_type.decode("latin-1") or "none"
                raise HTTPError(415, f"content type must be application/json, got {shown}")
        encoding = headers.get(b"content-encoding")
        if encoding is not None and encoding.strip().lower() != b"identity":
            raise HTTPError(415, f"content encoding {encoding.strip().lower().decode('latin-1')} is not supported: "
                                 "send plain JSON")
        limit = self.settings.max_body_bytes
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise HTTPError(413, f"request body of {int(declared)} bytes is over the limit of {limit}", CLOSE)
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise HTTPError(400, "client disconnected before sending the whole body")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise HTTPError(413, f"request body is over the limit of {limit} bytes", CLOSE)
            chunks.append(chunk)
            more = message.get("more_body", False)
        if not size:
            raise HTTPError(400, "empty request body: send a JSON object")
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    async def _off_loop(self, work, body: bytes, *args):
        """work(body, *args) on the scoring thread pool, so that the loop stays free for other requests."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, work, body, *args)

    def _predict(self, data: object, log: dict, where: str) -> dict:
        if type(data) is list and len(data) > self.settings.max_rows:
            raise HTTPError(413, f"{len(data)} rows are over the limit of {self.settings.max_rows} a request")
        rows = self.schema.check(data, where)
        result = self.scorer.run(rows if self.input == "rows" else self.schema.frame(rows))
        prediction = predictions(result, len(rows))
        log["predictions"] = prediction["result"]
        log[ENCODED] = encoded = COMPACT(prediction["result"])  # once: the response, the log, the record
        if self.collector is not None:
            self.collector.collect_prediction(log["request_id"], self.settings.model_version, rows, encoded)
        return prediction

    async def _score(self, scope, receive, headers, log):
        body = await self._read_body(receive, headers)
        if len(body) <= self._offload_bytes:  # small: inline, cheaper than a hand-off to the pool
            return self._score_body(body, log)
        return await self._off_loop(self._score_body, body, log)

    def _score_body(self, body: bytes, log: dict) -> tuple:
        payload = parse_json(body)
        if not isinstance(payload, dict) or "data" not in payload:
            raise HTTPError(422, 'expected a JSON object {"data": [[...], ...]} or {"data": [{...}, ...]}')
        prediction = self._predict(payload["data"], log, "data")
        if len(prediction) == 1:  # {"result": [...]} alone: the predictions as encoded once
            return 200, f'{{"result":{log[ENCODED]}}}'.encode(), JSON
        return 200, COMPACT(prediction).encode(), JSON

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
        return 200, self._openapi_body, JSON

    async def _docs(self, scope, receive, headers, log):
        return 200, openapi.DOCS_HTML.encode(), [(b"content-type", b"text/html; charset=utf-8")]

    def _model_route(self, path: str) -> tuple:
        """(handler, methods, route template) of a /v2/models/... path; (None, None, UNMATCHED) when unknown."""
        name, _, action = path[len(self._model_prefix):].strip("/").partition("/")
        version = f"versions/{self.settings.model_version}"
        if action in ("", version):
            handler, methods, template = self._model_metadata, GET, ""
        elif action in ("ready", f"{version}/ready"):
            handler, methods, template = self._ready, GET, "/ready"
        elif action in ("infer", f"{version}/infer"):
            handler, methods, template = self._infer, POST, "/infer"
        else:
            return None, None, UNMATCHED
        if name != self.settings.model_name:
            handler = self._unknown_model
        return handler, methods, "/v2/models/{name}" + template

    async def _unknown_model(self, scope, receive, headers, log):
        raise HTTPError(404, f"no such model here (this server hosts '{self.settings.model_name}')")

    async def _model_metadata(self, scope, receive, headers, log):
        return 200, self._metadata_body, JSON

    async def _infer(self, scope, receive, headers, log):
        header = headers.get(binary.HEADER)
        body = await self._read_body(receive, headers, True, header is not None)  # untyped is JSON; raw tensors
        if len(body) <= self._offload_bytes:
            return self._infer_body(body, header, log)
        return await self._off_loop(self._infer_body, body, header, log)

    def _infer_body(self, body: bytes, header: bytes | None, log: dict) -> tuple:
        if header is None:
            payload = parse_json(body)
            fast = self.v2.fast_rows(payload)  # None unless a dict
            if fast is not None and "outputs" not in payload and "parameters" not in payload:
                # the common request: its rows in one pass, its response written from the encoded predictions
                prediction = self._predict(fast[0], log, fast[1])
                request_id = payload.get("id")
                if type(request_id) is not str:
                    request_id = log["request_id"]
                return 200, self.v2.response_body(request_id, prediction, log[ENCODED]), JSON
            rows, where = fast or self.v2.general_rows(payload)
        else:
            payload = binary.split_request(body, header)
            rows, where = self.v2.rows(payload)
        wanted = self.v2.requested_outputs(payload)
        prediction = self._predict(rows, log, where)
        request_id = payload.get("id")
        response = {"model_name": self.settings.model_name, "model_version": self.settings.model_version,
                    "id": request_id if isinstance(request_id, str) else log["request_id"],
                    "outputs": self.v2.outputs_of(prediction, wanted)}
        if header is None and "parameters" not in payload:
            return 200, jsoncodec.dumps(response).encode(), JSON
        body, json_length = binary.join_response(response, binary.binary_outputs(payload))
        if json_length is None:
            return 200, body, JSON
        return 200, body, [(b"content-type", b"application/octet-stream"),
                           (binary.HEADER, str(json_length).encode())]


def parse_json(body: bytes) -> object:
    """The JSON value of a request body; a 400 naming the problem when it is not JSON."""
    try:
        return jsoncodec.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise HTTPError(400, f"invalid JSON: {exc}") from None
    except RecursionError:
        raise HTTPError(400, "invalid JSON: nested too deeply") from None


def unwrap(app) -> "ScoringApp":
    """The ScoringApp inside app (uvicorn may wrap it in middleware)."""
    for _ in range(10):
        if isinstance(app, ScoringApp):
            return app
        app = getattr(app, "app", None)
    raise RuntimeError("not a scoring app: serve ml_service.serving.app:create_app")


def create_app() -> ScoringApp:
    """App factory for uvicorn: settings from the environment."""
    return ScoringApp(load_serving_settings())
