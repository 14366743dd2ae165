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
import json
import math
import os
import sys
import time
import traceback

from ml_service.serving import openapi, schema
from ml_service.serving.auth import authorized
from ml_service.serving.collector import Collector
from ml_service.serving.config import ServingConfigError, ServingSettings, load_serving_settings
from ml_service.serving.metrics import Metrics
from ml_service.serving.schema import InputError

JSON = [(b"content-type", b"application/json")]
PUBLIC = {"/v2/health/live", "/v2/health/ready", "/metrics", "/openapi.json", "/docs"}
LOG_FLUSH_SECONDS = 0.2
INPUT_KINDS = ("frame", "rows")


class HTTPError(Exception):
    """A request that cannot be served; status and message go to the client."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


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
        except (HTTPError, InputError) as exc:
            status, content_type = getattr(exc, "status", 422), JSON
            message = str(exc)
            body = json.dumps({"error": message, "request_id": request_id}).encode()
            log["error"] = message
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

    async def _read_json(self, scope, receive, headers, untyped_is_json: bool = False) -> object:
        if scope["method"] != "POST":
            raise HTTPError(405, f"{scope['method']} is not allowed here: use POST")
        content_type = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
        if content_type != b"application/json" and not (untyped_is_json and not content_type):
            shown = content_type.decode("latin-1") or "none"
            raise HTTPError(415, f"content type must be application/json, got {shown}")
        encoding = headers.get(b"content-encoding", b"identity").strip().lower()
        if encoding != b"identity":
            raise HTTPError(415, f"content encoding {encoding.decode('latin-1')} is not supported: send plain JSON")
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

    def _predict(self, data: object, log: dict, where: str) -> dict:
        rows = self.schema.check(data, where)
        result = self.scorer.run(rows if self.input == "rows" else self.schema.frame(rows))
        prediction = predictions(result, len(rows))
        log["predictions"] = prediction["result"]
        if self.collector is not None:
            self.collector.collect({"time": time.time(), "request_id": log["request_id"],
                                    "model_version": self.settings.model_version, "inputs": rows,
                                    "predictions": prediction["result"]})
        return prediction

    async def _score(self, scope, receive, headers, log):
        payload = await self._read_json(scope, receive, headers)
        if not isinstance(payload, dict) or "data" not in payload:
            raise HTTPError(422, 'expected a JSON object {"data": [[...], ...]} or {"data": [{...}, ...]}')
        return 200, json.dumps(self._predict(payload["data"], log, "data")).encode(), JSON

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

    async def _model_route(self, scope, receive, headers, log):
        rest = scope["path"][len(self._model_prefix):].strip("/")
        name, _, action = rest.partition("/")
        if name != self.settings.model_name:
            raise HTTPError(404, f"no model named '{name}' here (this server hosts '{self.settings.model_name}')")
        if action in ("", f"versions/{self.settings.model_version}"):
            return 200, self._metadata_body, JSON
        if action == "ready":
            return await self._ready(scope, receive, headers, log)
        if action in ("infer", f"versions/{self.settings.model_version}/infer"):
            return await self._infer(scope, receive, headers, log)
        raise HTTPError(404, f"no such endpoint: {scope['path']}")

    async def _infer(self, scope, receive, headers, log):
        if b"inference-header-content-length" in headers:
            raise HTTPError(415, "binary tensor data (Inference-Header-Content-Length) is not supported: "
                                 "send JSON tensors (tritonclient: binary_data=False)")
        payload = await self._read_json(scope, receive, headers, untyped_is_json=True)
        rows, where = self.v2.rows(payload)
        wanted = self.v2.requested_outputs(payload)
        prediction = self._predict(rows, log, where)
        request_id = payload.get("id")
        body = {"model_name": self.settings.model_name, "model_version": self.settings.model_version,
                "id": request_id if isinstance(request_id, str) else log["request_id"],
                "outputs": self.v2.outputs_of(prediction, wanted)}
        return 200, json.dumps(body).encode(), JSON


V2_NUMBERS = {"FP64", "FP32", "FP16", "INT64", "INT32", "INT16", "INT8", "UINT64", "UINT32", "UINT16", "UINT8"}
V2_DATATYPES = {"double": "FP64", "float": "FP32", "long": "INT64", "integer": "INT32", "boolean": "BOOL",
                "string": "BYTES", "datetime": "BYTES", "binary": "BYTES"}


def _shape_ok(shape: object, rank: int) -> bool:
    return isinstance(shape, list) and len(shape) == rank and all(type(d) is int and d >= 0 for d in shape)


class V2:
    """The Open Inference Protocol view of a model: its metadata, request tensors to rows, predictions to outputs.

    A model with named columns takes one input per column ([rows] or [rows, 1]; BYTES for strings, BOOL for
    booleans) or, when every column is a number, one [rows, columns] tensor; an untyped model takes the tensor.
    """

    def __init__(self, model_schema: schema.Schema, name: str, version: str, platform: str, datatype: str,
                 classes: list | None):
        self.schema = model_schema
        if classes and all(isinstance(c, str) for c in classes):
            datatype = "BYTES"  # labels are the classes
        self.outputs = [{"name": "predict", "datatype": datatype, "shape": [-1]}]
        if classes:
            self.outputs.append({"name": "probabilities", "datatype": "FP64", "shape": [-1, len(classes)]})
        if model_schema.typed:
            inputs = [{"name": c.name, "datatype": V2_DATATYPES[c.type], "shape": [-1]} for c in model_schema.columns]
        else:
            inputs = [{"name": "input-0", "datatype": "FP64", "shape": [-1, model_schema.width or -1]}]
        self.metadata = {"name": name, "versions": [version], "platform": platform, "inputs": inputs,
                         "outputs": self.outputs}

    def rows(self, payload: object) -> tuple[list, str]:
        """The rows of an inference request, and how errors name them."""
        if not isinstance(payload, dict) or not isinstance(payload.get("inputs"), list) or not payload["inputs"]:
            raise HTTPError(422, 'expected {"inputs": [{"name", "shape", "datatype", "data"}, ...]}')
        inputs = payload["inputs"]
        for k, tensor in enumerate(inputs):
            if not isinstance(tensor, dict):
                raise HTTPError(422, f"inputs[{k}] must be an object")
            missing = [key for key in ("name", "shape", "datatype", "data") if key not in tensor]
            if missing:
                raise HTTPError(422, f"inputs[{k}] is missing {', '.join(missing)}")
            for key in ("name", "datatype"):
                if not isinstance(tensor[key], str):
                    raise HTTPError(422, f"inputs[{k}].{key} must be a string, got {type(tensor[key]).__name__}")
        columns = set(self.schema.names)
        if any(t["name"] in columns for t in inputs):
            return self._column_rows(inputs), "row"
        if len(inputs) != 1:
            if self.schema.typed:
                raise HTTPError(422, f"unknown inputs {', '.join(repr(t['name']) for t in inputs)}: this model "
                                     f"takes one input per column ({', '.join(self.schema.names)})")
            raise HTTPError(422, f"this model takes one input tensor, got {len(inputs)}")
        tensor = inputs[0]
        if tensor["datatype"] not in V2_NUMBERS:
            raise HTTPError(422, f"inputs[0].datatype {tensor['datatype']!r} is not numeric")
        if not self.schema.numeric:
            text = [c.name for c in self.schema.columns if c.type not in schema.NUMERIC]
            raise HTTPError(422, f"inputs[0] {tensor['name']!r} is not a column of this model, and a 2-D tensor "
                                 f"cannot carry its non-numeric columns ({', '.join(text)}): send one input a column")
        return _matrix(tensor), "inputs[0].data"

    def _column_rows(self, inputs: list) -> list:
        index = {c.name: c for c in self.schema.columns}
        unknown = [repr(t["name"]) for t in inputs if t["name"] not in index]
        if unknown:
            raise HTTPError(422, f"unknown input(s) {', '.join(unknown)}; the model's columns are "
                                 f"{', '.join(self.schema.names)}")
        values, n_rows = {}, None
        for k, tensor in enumerate(inputs):
            name, column = tensor["name"], index[tensor["name"]]
            if name in values:
                raise HTTPError(422, f"inputs[{k}]: column {name!r} is sent twice")
            expected = V2_DATATYPES[column.type]
            allowed = V2_NUMBERS if expected in V2_NUMBERS else {expected}
            if tensor["datatype"] not in allowed:
                raise HTTPError(422, f"inputs[{k}] ({name!r}) has datatype {tensor['datatype']!r}; the column is "
                                     f"{column.type}: send {expected}")
            values[name] = _column(tensor, k)
            if n_rows is None:
                n_rows = len(values[name])
            elif len(values[name]) != n_rows:
                raise HTTPError(422, f"inputs[{k}] ({name!r}) has {len(values[name])} rows; "
                                     f"inputs[0] has {n_rows}")
        missing = [repr(c.name) for c in self.schema.columns if c.required and c.name not in values]
        if missing:
            raise HTTPError(422, f"no input for required column(s) {', '.join(missing)}")
        empty = [None] * n_rows
        data = [values.get(c.name, empty) for c in self.schema.columns]
        return [list(row) for row in zip(*data)]

    def requested_outputs(self, payload: dict) -> list[str] | None:
        """The output names a request asks for (None: it names none, so all); 422 for unknown ones."""
        requested = payload.get("outputs")
        if requested is None:
            return None
        if not isinstance(requested, list) or not all(isinstance(o, dict) and isinstance(o.get("name"), str)
                                                      for o in requested):
            raise HTTPError(422, 'outputs must be a list of {"name": ...}')
        known = [o["name"] for o in self.outputs]
        unknown = [repr(o["name"]) for o in requested if o["name"] not in known]
        if unknown:
            raise HTTPError(422, f"unknown output(s) {', '.join(unknown)}; this model returns {', '.join(known)}")
        return [o["name"] for o in requested]

    def outputs_of(self, prediction: dict, wanted: list[str] | None) -> list[dict]:
        """The response's output tensors for a prediction (wanted: the requested names, None for all)."""
        outputs = []
        if wanted is None or "predict" in wanted:
            outputs.append({"name": "predict", **_tensor(prediction["result"])})
        probabilities = prediction.get("probabilities")
        if probabilities is not None and (wanted is None or "probabilities" in wanted):
            width = len(probabilities[0]) if probabilities else 0
            outputs.append({"name": "probabilities", "datatype": "FP64", "shape": [len(probabilities), width],
                            "data": [p for row in probabilities for p in row]})
        return outputs


def _tensor(values: list) -> dict:
    """datatype, shape and flat data of one prediction a row."""
    kinds = {type(v) for v in values}
    if kinds <= {int, float}:
        return {"datatype": "FP64", "shape": [len(values)], "data": values}
    if kinds == {bool}:
        return {"datatype": "BOOL", "shape": [len(values)], "data": values}
    numbers = {int, float}
    if kinds == {list} and len({len(v) for v in values}) == 1 and all(type(x) in numbers for v in values for x in v):
        return {"datatype": "FP64", "shape": [len(values), len(values[0])], "data": [x for v in values for x in v]}
    return {"datatype": "BYTES", "shape": [len(values)],
            "data": [v if type(v) is str else json.dumps(v) for v in values]}


def _column(tensor: dict, k: int) -> list:
    """The values of one per-column input: shape [rows] or [rows, 1], data flat or nested."""
    shape, data = tensor["shape"], tensor["data"]
    if not (_shape_ok(shape, 1) or (_shape_ok(shape, 2) and shape[1] == 1)):
        raise HTTPError(422, f"inputs[{k}].shape must be [rows] or [rows, 1], got {shape!r}")
    if not isinstance(data, list):
        raise HTTPError(422, f"inputs[{k}].data must be a list")
    if data and type(data[0]) is list:
        if not all(type(v) is list and len(v) == 1 for v in data):
            raise HTTPError(422, f"inputs[{k}].data must hold one value a row")
        data = [v[0] for v in data]
    if len(data) != shape[0]:
        raise HTTPError(422, f"inputs[{k}].data has {len(data)} values; shape {shape} needs {shape[0]}")
    return data


def _matrix(tensor: dict) -> list:
    """The rows of one [rows, columns] tensor, data flat (row-major) or nested."""
    shape, data = tensor["shape"], tensor["data"]
    if not _shape_ok(shape, 2):
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


def _plain(values: object) -> list:
    """A list from what run() returned: numpy arrays, pandas Series or one-column frames, tuples."""
    if type(values) is list:
        return values
    if hasattr(values, "to_numpy"):  # pandas
        values = values.to_numpy()
    if getattr(values, "ndim", 1) == 2 and values.shape[1] == 1:  # a [rows, 1] array: one value a row
        values = values[:, 0]
    if hasattr(values, "tolist"):
        return values.tolist()
    if isinstance(values, (str, bytes, dict)) or not hasattr(values, "__iter__"):
        raise RuntimeError(f"run() returned a {type(values).__name__}, not one prediction a row")
    return list(values)


def _value(value: object) -> object:
    """One prediction as a JSON value: a finite number, a string or boolean label, or a list of numbers."""
    kind = type(value)
    if kind is float:
        if not math.isfinite(value):
            raise HTTPError(500, "model returned a non-finite prediction")
        return value
    if kind is int or kind is str or kind is bool:
        return value
    if value is None:
        raise HTTPError(500, "model returned a null prediction")
    if hasattr(value, "item") and getattr(value, "ndim", 0) == 0:  # a numpy scalar
        return _value(value.item())
    if isinstance(value, (list, tuple)) or hasattr(value, "tolist"):
        return [_value(v) for v in _plain(value)]
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    raise RuntimeError(f"run() returned a prediction of type {kind.__name__}")


def _values(values: list) -> list:
    for i, value in enumerate(values):
        kind = type(value)
        if kind is float:
            if not math.isfinite(value):
                raise HTTPError(500, "model returned a non-finite prediction")
        elif kind is not str and kind is not int and kind is not bool:
            return values[:i] + [_value(v) for v in values[i:]]
    return values


def predictions(result: object, n_rows: int) -> dict:
    """What run() returned as the JSON response: {"result": [...]}, plus probabilities and classes if given."""
    extra = {}
    if isinstance(result, dict):
        if "result" not in result:
            raise RuntimeError(f"run() returned a dict without 'result' (keys: {', '.join(map(str, result))})")
        if result.get("probabilities") is not None:
            probabilities = [_values(_plain(row)) for row in _plain(result["probabilities"])]
            if len(probabilities) != n_rows:
                raise RuntimeError(f"run() returned {len(probabilities)} probability rows for {n_rows} rows")
            extra["probabilities"] = probabilities
        if result.get("classes") is not None:
            extra["classes"] = _values(_plain(result["classes"]))
        result = result["result"]
    values = _values(_plain(result))
    if len(values) != n_rows:
        raise RuntimeError(f"run() returned {len(values)} predictions for {n_rows} rows")
    return {"result": values, **extra}


def create_app() -> ScoringApp:
    """App factory for uvicorn: settings from the environment."""
    return ScoringApp(load_serving_settings())
