"""The request path's JSON (jsoncodec) writes and reads exactly what the json module does, errors included;
the metrics' plain counters render the histogram Prometheus expects."""
import json
import math

import pytest

from ml_service.serving import jsoncodec
from ml_service.serving.metrics import Metrics

VALUES = [
    {"result": [302.9652868209354, -1e-300, 1.5e308, 0, -7, True, None]},
    {"text": "é ü \u2028 \U0001F600 \"quoted\" \\ \n\t\x00", "nested": [[1, [2, {"k": []}]], {}]},
    [float("nan"), float("inf"), -float("inf")],
    "plain", 12, 3.25, False, None, [],
]


@pytest.mark.parametrize("value", VALUES)
def test_encoders_write_what_json_dumps_writes(value):
    assert jsoncodec.dumps(value) == json.dumps(value)
    assert jsoncodec.COMPACT(value) == json.dumps(value, separators=(",", ":"))


def test_encoders_refuse_what_json_dumps_refuses():
    with pytest.raises(TypeError, match="Object of type set is not JSON serializable"):
        jsoncodec.dumps({"a": {1}})


@pytest.mark.parametrize("body", [
    b'{"data": [[1, 2.5, -3e2, "x\\u00e9"]]}', b'{"a":{"b":[true,false,null]}}', "{\"é\": 1}".encode(),
    b'{"n": NaN}', b' {"lead": 1}', b'{"trail": 1}\n', b'[1, 2]', "{\"u\": 1}".encode("utf-16"),
    b'{"lone": "\xed\xa0\x80"}',
])
def test_loads_reads_what_json_loads_reads(body):
    expected = json.loads(body)
    got = jsoncodec.loads(body)
    assert got == expected or (math.isnan(got["n"]) and math.isnan(expected["n"]))


@pytest.mark.parametrize("body", [b'{"a": 1} x', b'{"a": }', b"{", b'{"a": 1}{"b": 2}', b"\xff\xfe{", b"{\xff}"])
def test_loads_fails_as_json_loads_fails(body):
    with pytest.raises(ValueError) as expected:
        json.loads(body)
    with pytest.raises(ValueError) as got:
        jsoncodec.loads(body)
    assert type(got.value) is type(expected.value) and str(got.value) == str(expected.value)


def test_latency_buckets_count_values_up_to_their_bound_cumulatively():
    metrics = Metrics("m", "1", render_seconds=0)
    for seconds in (0.0005, 0.0006, 0.004, 3.0):
        metrics.observe("/score", 200, seconds, 2)
    metrics.observe("/score", 422, 0.001, 0)
    text = metrics.render().decode()
    bucket = 'mlops_request_duration_seconds_bucket{le="%s",model="m",path="/score",version="1"} %s'
    for bound, count in (("0.0005", 1.0), ("0.001", 3.0), ("0.005", 4.0), ("2.5", 4.0), ("+Inf", 5.0)):
        assert bucket % (bound, count) in text
    assert 'mlops_request_duration_seconds_count{model="m",path="/score",version="1"} 5.0' in text
    assert 'mlops_requests_total{model="m",path="/score",status="200",version="1"} 4.0' in text
    assert 'mlops_request_errors_total{model="m",status="422",version="1"} 1.0' in text
    assert 'mlops_predictions_total{model="m",version="1"} 8.0' in text
