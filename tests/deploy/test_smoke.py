"""The smoke test's own rules (smoke.py), in-process: what counts as a prediction, when /score and the v2
endpoint agree (a relative tolerance of 1e-6, on both sides of it), how rows become a v2 request, and where the
payload comes from. Against a real scoring service: tests/serving/test_http.py."""
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
