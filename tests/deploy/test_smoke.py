"""The smoke test's own rules (smoke.py), in-process: what counts as a prediction, when /score and the v2
endpoint agree (a relative tolerance of 1e-6, on both sides of it), how rows become a v2 request, and where the
payload comes from; smoke_test against a stand-in service on 127.0.0.1 that answers wrongly on purpose (v2 and
/score disagree, too few predictions, a 5xx to a malformed request). Against a real scoring service:
tests/serving/test_http.py."""
from __future__ import annotations

import math

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from ml_service.deploy.smoke import SmokeTestError, _is_prediction, _same, advertised_example, v2_request

FINITE = st.floats(allow_nan=False, allow_infinity=False, min_value=-1e12, max_value=1e12)


@pytest.mark.parametrize("value, ok", [
    (1.5, True), (0, True), (True, True), ("yes", True), ([0.2, 0.8], True), ([[1], [2]], True),
    (float("nan"), False), (float("inf"), False), (-float("inf"), False), ([], False), ([1.0, float("nan")], False),
    (None, False), ({"a": 1}, False)])
def test_a_prediction_is_a_finite_number_a_label_or_a_non_empty_list_of_them(value, ok):
    assert _is_prediction(value) is ok


@given(FINITE)
def test_v2_and_score_agree_within_a_relative_millionth_and_not_beyond(value):
    assume(abs(value) > 1e-3)
    assert _same(value, value * (1 + 5e-7)) and _same(value * (1 + 5e-7), value)
    assert not _same(value, value * (1 + 5e-6)) and not _same(value, -value)


def test_numbers_near_zero_agree_within_an_absolute_billionth():
    assert _same(0.0, 5e-10) and not _same(0.0, 5e-9)


def test_labels_and_whole_numbers_agree_only_when_equal():
    assert _same("yes", "yes") and not _same("yes", "no")
    assert _same(3, 3) and not _same(3, 4) and _same(3, 3.0)
    assert not _same("1", 1.0) and not _same(None, 0.0)


METADATA = {"inputs": [{"name": "age", "datatype": "FP64", "shape": [-1]},
                       {"name": "grade", "datatype": "BYTES", "shape": [-1]}]}


def test_rows_become_one_column_per_input_by_position_or_by_name():
    by_position = v2_request(METADATA, [[50, "high"], [30, "low"]])
    by_name = v2_request(METADATA, [{"grade": "high", "age": 50}, {"age": 30, "grade": "low"}])
    assert by_position == by_name == {"inputs": [
        {"name": "age", "shape": [2], "datatype": "FP64", "data": [50, 30]},
        {"name": "grade", "shape": [2], "datatype": "BYTES", "data": ["high", "low"]}]}
    with pytest.raises(SmokeTestError, match="a payload row has 1 values; the model metadata lists 2 inputs"):
        v2_request(METADATA, [[50]])


@given(st.lists(st.lists(FINITE, min_size=3, max_size=3), min_size=1, max_size=20))
def test_a_two_dimensional_tensor_takes_the_rows_flattened_in_order(rows):
    metadata = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 3]}]}
    [tensor] = v2_request(metadata, rows)["inputs"]
    assert tensor["shape"] == [len(rows), 3] and tensor["datatype"] == "FP32"
    assert tensor["data"] == [v for row in rows for v in row]
    assert all(not math.isnan(v) for v in tensor["data"])


def test_a_tensor_model_refuses_records():
    with pytest.raises(SmokeTestError, match="one 2-D tensor"):
        v2_request({"inputs": [{"name": "x", "shape": [-1, 3]}]}, [{"a": 1}])


def test_the_payload_is_the_example_the_service_advertises_for_score():
    example = {"data": [[1, 2]]}
    spec = {"paths": {"/score": {"post": {"requestBody": {"content": {"application/json": {"example": example}}}}}}}
    assert advertised_example(spec) == example
    assert advertised_example({"paths": {}}) is None
    broken = {"paths": {"/score": {"post": {"requestBody": {"content": {"application/json": {"example": [1]}}}}}}}
    assert advertised_example(broken) is None


class _Service:
    """A stand-in scoring service on 127.0.0.1 whose answers a test chooses: /score predicts `score`, the v2
    endpoint predicts `v2` (None: 1.5 for each row sent), a malformed request gets `malformed`, its metadata lists
    `inputs` (the real service: tests/serving/test_http.py, which always agrees with itself). `received`: the
    /score bodies, in order."""

    def __init__(self, score, v2, malformed=400, inputs=("a", "b")):
        import json
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        spec = {"paths": {"/score": {"post": {"requestBody": {"content": {"application/json": {
            "example": {"data": [[1.0, 2.0], [3.0, 4.0]]}}}}}}, "/v2/models/m/infer": {}}}
        received = self.received = []
        answers = {"/v2/health/ready": (200, {}), "/openapi.json": (200, spec),
                   "/v2/models/m": (200, {"inputs": [{"name": n, "datatype": "FP64", "shape": [-1]} for n in inputs]})}

        class Handler(BaseHTTPRequestHandler):
            def _send(self, status, body):
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                self._send(*answers.get(self.path, (404, {})))

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if self.path == "/score":
                    received.append(body)
                    rows = body.get("data")
                    result = [1.5] * len(rows) if score is None and isinstance(rows, list) else score
                    self._send(*((200, {"result": result}) if isinstance(rows, list) else (malformed, {"error": "no"})))
                else:
                    data = [1.5] * body["inputs"][0]["shape"][0] if v2 is None else v2
                    self._send(200, {"outputs": [{"name": "predict", "datatype": "FP64", "shape": [len(data)],
                                                  "data": data}]})

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def __enter__(self):
        return self.url

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def test_a_service_whose_v2_endpoint_and_score_agree_passes_and_one_whose_v2_predicts_otherwise_fails():
    from ml_service.deploy.smoke import smoke_test

    with _Service(score=[1.5, 2.5], v2=[1.5, 2.5]) as url:
        assert smoke_test(url, timeout_s=10).checks == ["ready", "score", "v2 infer", "malformed request refused"]
    with _Service(score=[1.5, 2.5], v2=[1.5, 9.5]) as url:
        with pytest.raises(SmokeTestError, match="predicted"):
            smoke_test(url, timeout_s=10)


def test_a_service_that_answers_fewer_predictions_than_rows_or_a_5xx_to_a_malformed_request_fails():
    from ml_service.deploy.smoke import smoke_test

    with _Service(score=[1.5], v2=[1.5]) as url:
        with pytest.raises(SmokeTestError, match="expected 'result' with 2"):
            smoke_test(url, timeout_s=10)
    for status, ok in ((400, True), (499, True), (500, False), (200, False)):
        with _Service(score=[1.5, 2.5], v2=[1.5, 2.5], malformed=status) as url:
            if ok:
                assert smoke_test(url, timeout_s=10).checks[-1] == "malformed request refused"
            else:
                with pytest.raises(SmokeTestError, match=f"HTTP {status}, expected a 4xx"):
                    smoke_test(url, timeout_s=10)
