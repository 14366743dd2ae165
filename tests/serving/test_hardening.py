"""Hardening of the scoring app, in process through ASGI: bounded metrics labels, methods and Allow, HEAD,
limits (rows, body), numbers that overflow, and the Open Inference Protocol's binary tensor extension."""
import json
import random
import struct

import numpy as np
import pytest

from ml_service.serving import binary
from ml_service.serving.app import ScoringApp
from ml_service.serving.config import ServingSettings
from tests.support.asgi import call
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


def test_bytes_tensors_round_trip():
    labels = ["benign", "malignant", ""]
    raw = b"".join(struct.pack("<I", len(v)) + v.encode() for v in labels)
    assert binary._decode(raw, "BYTES", 0) == labels
    response = {"outputs": [{"name": "predict", "datatype": "BYTES", "shape": [3], "data": labels}]}
    body, size = binary.join_response(response, True)
    assert body[size:] == raw and json.loads(body[:size])["outputs"][0]["parameters"]["binary_data_size"] == len(raw)
