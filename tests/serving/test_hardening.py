"""Hardening of the scoring app, in process through ASGI: bounded metrics labels, methods and Allow, HEAD,
limits on both sides (rows, body), content types, numbers that overflow, the Open Inference Protocol's binary
tensor extension, and large requests scored off the event loop."""
import asyncio
import json
import random
import struct
import sys
import threading
import types

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ml_service.serving import binary
from ml_service.serving.app import ScoringApp
from ml_service.serving.config import ServingSettings
from tests.support.asgi import call, request
from tests.support.rows_score import COLUMNS, save_regressor

ROW = [59, 2.0, 32.1, 101.0, 157.0, 93.2, 38.0, 4.0, 4.8598, 87.0]
JSON = {"Content-Type": "application/json"}


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    model = save_regressor(tmp_path_factory.mktemp("regressor"))
    hosted = ScoringApp(ServingSettings(model_dir=str(model), score_module="tests.support.rows_score",
                                        model_name="regression", model_version="3", log_requests=False,
                                        max_body_bytes=5000, max_rows=20))
    hosted.metrics.render_seconds = 0
    return hosted


def _series(text: bytes, metric: str) -> set[str]:
    return {line.split(" ")[0] for line in text.decode().splitlines() if line.startswith(metric)}


def test_random_paths_share_one_metrics_label(app):
    rng = random.Random(0)
    call(app, "GET", "/metrics")
    for _ in range(2000):
        path = "/" + "".join(rng.choice("abcdefghijklmnopqrstuvwxyz/%.") for _ in range(rng.randint(1, 40)))
        assert call(app, rng.choice(["GET", "POST", "DELETE"]), path)[0] in (404, 405)
    for name in ("other", "x" * 300):  # unknown models and actions: templates, not values
        call(app, "GET", f"/v2/models/{name}")
        call(app, "GET", f"/v2/models/regression/{name}")
    text = call(app, "GET", "/metrics")[2]
    requests = _series(text, "mlops_requests_total")
    assert len(requests) <= 12, requests
    assert {s.split('path="')[1].split('"')[0] for s in requests} <= {
        "unmatched", "/metrics", "/v2/models/{name}"}
    assert len(text) < 20_000


@pytest.mark.parametrize("path", ["/metrics", "/v2/health/live", "/v2/health/ready", "/openapi.json", "/docs",
                                  "/v2/models/regression", "/v2/models/regression/ready"])
def test_read_only_endpoints_answer_get_and_head_only(app, path):
    status, headers, body = call(app, "GET", path)
    assert status == 200
    head = call(app, "HEAD", path)
    assert head[0] == 200 and head[2] in (b"", "")
    assert path == "/metrics" or head[1]["content-length"] == headers["content-length"]
    for method in ("POST", "DELETE", "PUT", "PATCH", "OPTIONS"):
        status, headers, body = call(app, method, path, b"{}", JSON)
        assert status == 405 and headers["allow"] == "GET, HEAD" and method in body["error"]


def test_post_endpoints_refuse_other_methods_with_allow(app):
    for path in ("/score", "/v2/models/regression/infer"):
        status, headers, _ = call(app, "DELETE", path)
        assert status == 405 and headers["allow"] == "POST"


def test_a_body_over_the_limit_is_413_and_closes_the_connection(app):
    status, headers, body = call(app, "POST", "/score", {"data": [ROW] * 200}, JSON)
    assert status == 413 and headers["connection"] == "close" and "over the limit" in body["error"]


def test_too_many_rows_are_refused(app):
    status, _, body = call(app, "POST", "/score", {"data": [[1] * 10] * 21}, JSON)
    assert status == 413 and "21 rows are over the limit of 20" in body["error"]


@pytest.mark.parametrize("value, columns", [("1" * 401, (0, 9)), ("-" + "9" * 401, (0, 9)), ("1e400", (0, 9)),
                                            ("12345678901234567890123456789", (0,))])
def test_huge_integers_and_out_of_range_numbers_are_422(app, value, columns):
    for column in columns:  # the long column, a double column
        row = [json.dumps(v) for v in ROW]
        row[column] = value
        status, _, body = call(app, "POST", "/score", f'{{"data": [[{",".join(row)}]]}}'.encode(), JSON)
        assert status in (400, 422), body
        assert "Traceback" not in json.dumps(body)


def test_inputs_that_overflow_the_model_never_give_nan(app):
    row = [59] + [1.7e308] * 9
    status, _, body = call(app, "POST", "/score", {"data": [ROW, row]}, JSON)
    assert status == 422 and body["error"].startswith("the model's prediction for row 1 is not finite")


def test_no_stack_trace_in_any_error(app):
    for body in (b"\xff", b"[" * 5000, b'{"data": 1}', b'{"data": [[NaN]]}'):
        status, _, payload = call(app, "POST", "/score", body, JSON)
        assert 400 <= status < 500 and "Traceback" not in payload["error"] and "File \"" not in payload["error"]


# --- the binary tensor extension ---------------------------------------------------------------------------

def _binary_request(payload: dict, raw: list[bytes]) -> tuple[bytes, dict]:
    text = json.dumps(payload).encode()
    return text + b"".join(raw), {"Inference-Header-Content-Length": str(len(text))}


def test_binary_inputs_and_outputs(app):
    data = np.array([ROW, ROW[::-1]], dtype=np.float64)
    payload = {"inputs": [{"name": "input-0", "shape": [2, 10], "datatype": "FP64",
                           "parameters": {"binary_data_size": data.nbytes}}],
               "outputs": [{"name": "predict", "parameters": {"binary_data": True}}]}
    body, headers = _binary_request(payload, [data.tobytes()])
    status, response_headers, raw = call(app, "POST", "/v2/models/regression/infer", body, headers)
    assert status == 200 and response_headers["content-type"] == "application/octet-stream"
    size = int(response_headers["inference-header-content-length"])
    answer = json.loads(raw[:size])
    output = answer["outputs"][0]
    assert output["parameters"] == {"binary_data_size": 16} and "data" not in output
    expected = call(app, "POST", "/score", {"data": data.tolist()}, JSON)[2]["result"]
    assert np.frombuffer(raw[size:], dtype="<f8").tolist() == expected


def test_binary_per_column_inputs_with_json_outputs(app):
    inputs, raw = [], []
    for name, value in zip(COLUMNS, ROW):
        array = np.array([value], dtype=np.int64 if name == "f0" else np.float32 if name == "f1" else np.float64)
        inputs.append({"name": name, "shape": [1], "datatype": {"int64": "INT64", "float32": "FP32"}.get(
            str(array.dtype), "FP64"), "parameters": {"binary_data_size": array.nbytes}})
        raw.append(array.tobytes())
    body, headers = _binary_request({"inputs": inputs}, raw)
    status, response_headers, answer = call(app, "POST", "/v2/models/regression/infer", body, headers)
    assert status == 200 and response_headers["content-type"] == "application/json"
    assert answer["outputs"][0]["data"] == pytest.approx(
        call(app, "POST", "/score", {"data": [ROW]}, JSON)[2]["result"], rel=1e-6)


@pytest.mark.parametrize("size, raw, message", [
    (80, b"\0" * 10, "binary_data_size 80 does not fit the body"),
    (10, b"\0" * 10, "10 bytes are not a whole number of FP64 values"),
    (8, b"\0" * 16, "8 bytes after the last binary input"),
])
def test_bad_binary_bodies_are_400(app, size, raw, message):
    payload = {"inputs": [{"name": "input-0", "shape": [1, 10], "datatype": "FP64",
                           "parameters": {"binary_data_size": size}}]}
    body, headers = _binary_request(payload, [raw])
    status, _, answer = call(app, "POST", "/v2/models/regression/infer", body, headers)
    assert status == 400 and message in answer["error"], answer


@pytest.mark.parametrize("raw", [b"\1\0", struct.pack("<I", 1) + b"a" + b"\0\0\0"])
def test_bytes_data_that_ends_inside_an_elements_length_is_a_400_naming_the_input(app, raw):
    payload = {"inputs": [{"name": "input-0", "shape": [2], "datatype": "BYTES",
                           "parameters": {"binary_data_size": len(raw)}}]}
    body, headers = _binary_request(payload, [raw])
    status, _, answer = call(app, "POST", "/v2/models/regression/infer", body, headers)
    assert status == 400 and "inputs[0]" in answer["error"] and "length" in answer["error"], answer


def test_bytes_tensors_round_trip():
    labels = ["benign", "malignant", ""]
    raw = b"".join(struct.pack("<I", len(v)) + v.encode() for v in labels)
    assert binary._decode(raw, "BYTES", 0) == labels
    response = {"outputs": [{"name": "predict", "datatype": "BYTES", "shape": [3], "data": labels}]}
    body, size = binary.join_response(response, True)
    assert body[size:] == raw and json.loads(body[:size])["outputs"][0]["parameters"]["binary_data_size"] == len(raw)


# --- limits on both sides: exactly the limit is served, one more is refused ----------------------------------

MAX_ROWS, MAX_BODY = 20, 5000  # the module app's limits


def _tensor(rows: list) -> dict:
    return {"inputs": [{"name": "input-0", "shape": [len(rows), 10], "datatype": "FP64",
                        "data": [v for row in rows for v in row]}]}


def _columns(rows: list) -> dict:
    return {"inputs": [{"name": name, "shape": [len(rows)], "datatype": "INT64" if j == 0 else "FP64",
                        "data": [row[j] for row in rows]} for j, name in enumerate(COLUMNS)]}


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(n=st.integers(1, 2 * MAX_ROWS))
def test_the_row_limit_serves_up_to_max_rows_and_refuses_more_on_every_route(app, n):
    rows = [ROW] * n
    records = [dict(zip(COLUMNS, ROW))] * n
    expected = 200 if n <= MAX_ROWS else 413
    for path, body in (("/score", {"data": rows}), ("/score", {"data": records}),
                       ("/v2/models/regression/infer", _tensor(rows)),
                       ("/v2/models/regression/infer", _columns(rows))):
        status, _, answer = call(app, "POST", path, body, JSON)
        assert status == expected, (path, n, answer)
        if expected == 413:
            assert f"{n} rows are over the limit of {MAX_ROWS}" in answer["error"]
        else:
            outputs = answer.get("result") or answer["outputs"][0]["data"]
            assert len(outputs) == n


def test_exactly_max_rows_is_served_and_one_more_is_refused(app):
    assert call(app, "POST", "/score", {"data": [ROW] * MAX_ROWS}, JSON)[0] == 200
    status, _, body = call(app, "POST", "/score", {"data": [ROW] * (MAX_ROWS + 1)}, JSON)
    assert status == 413 and body["error"] == f"{MAX_ROWS + 1} rows are over the limit of {MAX_ROWS} a request"


def _body_of(size: int) -> bytes:
    """A valid /score body of exactly size bytes (JSON allows the trailing spaces)."""
    body = json.dumps({"data": [ROW] * 3}).encode()
    assert len(body) <= size
    return body + b" " * (size - len(body))


@pytest.mark.parametrize("chunk", [None, 700, 1])
def test_a_body_of_exactly_max_body_bytes_is_read_and_one_byte_more_is_413(app, chunk):
    for declared in (True, False):  # Content-Length given (refused before reading), or only counted as it streams
        for size, expected in ((MAX_BODY, 200), (MAX_BODY + 1, 413)):
            body = _body_of(size)
            headers = {**JSON, "Content-Length": str(len(body))} if declared else JSON
            status, response_headers, answer = call(app, "POST", "/score", body, headers, chunk=chunk)
            assert status == expected, (size, declared, chunk, answer)
            if expected == 413:
                assert response_headers["connection"] == "close" and f"limit of {MAX_BODY}" in answer["error"]
            else:
                assert len(answer["result"]) == 3


def test_a_declared_length_over_the_limit_is_refused_before_the_body_is_read(app):
    """The Content-Length alone decides: a client announcing too much gets its 413 without sending it."""
    status, headers, body = call(app, "POST", "/score", b"", {**JSON, "Content-Length": str(MAX_BODY + 1)})
    assert status == 413 and headers["connection"] == "close"
    assert body["error"] == f"request body of {MAX_BODY + 1} bytes is over the limit of {MAX_BODY}"


# --- content types: parameters and case do not matter, anything but JSON is a 415 -----------------------------

ACCEPTED = ["application/json", "application/json; charset=utf-8", "application/json;charset=UTF-8",
            "Application/JSON", "APPLICATION/JSON; Charset=utf-8", "application/json ; foo=bar", " application/json"]
REFUSED = ["text/plain", "application/jsonl", "application/json-patch+json", "text/json", "application/x-json",
           "multipart/form-data; boundary=x", "application/octet-stream", "json"]


@pytest.mark.parametrize("content_type", ACCEPTED)
def test_json_with_parameters_or_in_any_case_is_accepted(app, content_type):
    headers = {"Content-Type": content_type}
    status, _, body = call(app, "POST", "/score", {"data": [ROW]}, headers)
    assert status == 200 and len(body["result"]) == 1, body
    status, _, body = call(app, "POST", "/v2/models/regression/infer", _tensor([ROW]), headers)
    assert status == 200 and body["outputs"][0]["shape"] == [1], body


@pytest.mark.parametrize("content_type", REFUSED)
def test_other_content_types_are_415_naming_what_was_sent(app, content_type):
    for path, body in (("/score", {"data": [ROW]}), ("/v2/models/regression/infer", _tensor([ROW]))):
        status, _, answer = call(app, "POST", path, body, {"Content-Type": content_type})
        assert status == 415, (path, content_type, answer)
        shown = content_type.split(";")[0].strip().lower() or "none"
        assert answer["error"] == f"content type must be application/json, got {shown}"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(parameters=st.lists(st.tuples(st.text("abcdefghijklmnopqrstuvwxyz-", min_size=1, max_size=10),
                                     st.text("abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=10)),
                           max_size=3),
       upper=st.booleans(), spaces=st.sampled_from(["", " ", "  "]))
def test_any_media_type_parameters_are_ignored(app, parameters, upper, spaces):
    media = "APPLICATION/JSON" if upper else "application/json"
    content_type = media + "".join(f"{spaces};{spaces}{name}={value}" for name, value in parameters)
    assert call(app, "POST", "/score", {"data": [ROW]}, {"Content-Type": content_type})[0] == 200, content_type


def test_content_encoding_identity_is_plain_json_and_any_other_is_415(app):
    for encoding in ("identity", "Identity", " identity "):
        assert call(app, "POST", "/score", {"data": [ROW]}, {**JSON, "Content-Encoding": encoding})[0] == 200
    for encoding in ("gzip", "br", "deflate", "x"):
        status, _, body = call(app, "POST", "/score", {"data": [ROW]}, {**JSON, "Content-Encoding": encoding})
        assert status == 415 and f"content encoding {encoding} is not supported" in body["error"]


# --- the binary extension: a JSON-only body with the header, binary outputs --------------------------------------

def test_an_inference_header_as_long_as_the_whole_body_is_a_json_only_request(app):
    text = json.dumps(_tensor([ROW])).encode()
    for length, expected in ((len(text), 200), (len(text) + 1, 400)):
        status, _, body = call(app, "POST", "/v2/models/regression/infer", text,
                               {"Inference-Header-Content-Length": str(length)})
        assert status == expected, body
    status, _, body = call(app, "POST", "/v2/models/regression/infer", text,
                           {"Inference-Header-Content-Length": "x1"})
    assert status == 400 and "does not fit a body" in body["error"]


def test_binary_data_ending_exactly_at_the_body_end_is_read_and_one_byte_more_or_less_is_400(app):
    data = np.array([ROW], dtype=np.float64).tobytes()
    payload = {"inputs": [{"name": "input-0", "shape": [1, 10], "datatype": "FP64",
                           "parameters": {"binary_data_size": len(data)}}]}
    body, headers = _binary_request(payload, [data])
    assert call(app, "POST", "/v2/models/regression/infer", body, headers)[0] == 200
    assert call(app, "POST", "/v2/models/regression/infer", body + b"\0", headers)[0] == 400
    assert call(app, "POST", "/v2/models/regression/infer", body[:-1], headers)[0] == 400


# --- large requests are scored off the event loop: a small one is answered while a large one is in run() -------

def _gated_module(gate: threading.Event, entered: threading.Event) -> types.ModuleType:
    """A score module whose run() holds a request of more than one row until gate is set."""
    module = types.ModuleType("gated_score")
    module.INPUT = "rows"
    module.init = lambda model_dir: None

    def run(rows):
        if len(rows) > 1:
            entered.set()
            gate.wait(20)
        return [float(len(rows))] * len(rows)

    module.run = run
    return module


def test_a_small_request_is_answered_while_a_large_one_is_scored(tmp_path, monkeypatch):
    """The fairness promise (docs/serving.md, MLOPS_OFFLOAD_BYTES): a body over offload_bytes is parsed and scored
    on the scoring thread, so the event loop answers small requests meanwhile. Checked by order of events, not by
    latency: the large request is held inside run() until the small one has its answer."""
    gate, entered = threading.Event(), threading.Event()
    monkeypatch.setitem(sys.modules, "gated_score", _gated_module(gate, entered))
    hosted = ScoringApp(ServingSettings(model_dir=str(tmp_path), score_module="gated_score", log_requests=False,
                                        offload_bytes=200))
    large, small = {"data": [ROW] * 10}, {"data": [ROW]}
    assert len(json.dumps(large)) > 200 >= len(json.dumps(small))
    finished = []

    async def scenario():
        loop = asyncio.get_running_loop()

        async def send(name, body):
            answer = await request(hosted, "POST", "/score", body, JSON)
            finished.append(name)
            return answer

        big = asyncio.create_task(send("large", large))
        assert await loop.run_in_executor(None, entered.wait, 20), "the large request never reached run()"
        little = await send("small", small)
        gate.set()
        return little, await big

    little, big = asyncio.run(scenario())
    assert finished == ["small", "large"]
    assert little[0] == 200 and little[2]["result"] == [1.0]
    assert big[0] == 200 and big[2]["result"] == [10.0] * 10


def test_a_request_of_exactly_offload_bytes_is_scored_on_the_loop_and_one_byte_more_off_it(tmp_path, monkeypatch):
    threads = []
    module = types.ModuleType("thread_probe_score")
    module.INPUT, module.init = "rows", (lambda model_dir: None)
    module.run = lambda rows: threads.append(threading.current_thread().name) or [0.0] * len(rows)
    monkeypatch.setitem(sys.modules, "thread_probe_score", module)
    body = json.dumps({"data": [ROW]}).encode()
    hosted = ScoringApp(ServingSettings(model_dir=str(tmp_path), score_module="thread_probe_score",
                                        log_requests=False, offload_bytes=len(body)))
    assert call(hosted, "POST", "/score", body, JSON)[0] == 200
    assert call(hosted, "POST", "/score", body + b" ", JSON)[0] == 200
    assert threads[0] == threading.main_thread().name and threads[1].startswith("scoring")
