"""The v2 fast path (V2.fast_rows, V2.response_body) answers exactly what the general path answers.

fast_rows takes the two requests clients send in one pass and gives up (None) on anything else; these tests
generate requests around those two shapes (names, datatypes, shapes, flat and nested data, wrong lengths,
wrong types) and hold the fast path to the general one: the same rows and error wording where it answers,
and a request the general path refuses is never accepted.
"""
from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from ml_service.serving.errors import HTTPError
from ml_service.serving.schema import Column, Schema
from ml_service.serving.v2 import V2

NUMERIC = V2(Schema(columns=(Column("a"), Column("b", "long"), Column("c", "float"))), "m", "1", "sklearn",
             "FP64", None)
MIXED = V2(Schema(columns=(Column("a"), Column("s", "string"), Column("f", "boolean"))), "m", "1", "sklearn",
           "FP64", None)
UNTYPED = V2(Schema(), "m", "1", "sklearn", "FP64", None)

values = st.one_of(st.integers(-5, 5), st.floats(allow_nan=False), st.booleans(), st.text(max_size=2),
                   st.none(), st.lists(st.integers(0, 3), max_size=2))
datatypes = st.sampled_from(["FP64", "FP32", "INT64", "BOOL", "BYTES", "fp64", 7, None])
names = st.one_of(st.sampled_from(["a", "b", "c", "s", "f", "input-0", "x"]), st.integers(0, 2), st.none())
shapes = st.one_of(st.lists(st.integers(-1, 4), min_size=0, max_size=3), st.just([True]), st.just("[1]"),
                   st.just([1.0]), st.none())


@st.composite
def tensors(draw) -> object:
    """An input tensor, usually well formed, sometimes with a key missing or a part of another type."""
    tensor = {"name": draw(names), "datatype": draw(datatypes), "shape": draw(shapes),
              "data": draw(st.one_of(st.lists(values, max_size=7), st.lists(st.lists(values, max_size=4), max_size=4),
                                     st.just("data")))}
    for key in draw(st.lists(st.sampled_from(list(tensor)), max_size=1)):
        del tensor[key]
    return draw(st.one_of(st.just(tensor), st.just(tensor), st.just(tensor), st.just([tensor]), st.just("t")))


@st.composite
def well_formed(draw, v2: V2, columns: list[str]) -> dict:
    """A request of the two common shapes with a fitting row count: one input a column, or one tensor."""
    n = draw(st.integers(0, 3))
    if columns and draw(st.booleans()):
        order = draw(st.permutations(columns))
        return {"inputs": [{"name": c, "datatype": draw(st.sampled_from(["FP64", "INT64", "FP32", "BYTES"])),
                            "shape": [n], "data": draw(st.lists(values, min_size=n, max_size=n))} for c in order]}
    width = draw(st.integers(0, 4))
    data = draw(st.lists(values, min_size=n * width, max_size=n * width))
    if draw(st.booleans()):
        data = [data[i * width:(i + 1) * width] for i in range(n)]
    return {"inputs": [{"name": draw(st.sampled_from(["input-0", "x"])), "datatype": "FP64", "shape": [n, width],
                        "data": data}]}


def _general(v2: V2, payload: object):
    try:
        return v2.general_rows(payload)
    except HTTPError as exc:
        return f"{exc.status} {exc}"


def _check(v2: V2, payload: object) -> None:
    fast = v2.fast_rows(payload)
    general = _general(v2, payload)
    if fast is not None:
        assert fast == general
    assert v2.rows(payload) == general if not isinstance(general, str) else fast is None


@settings(max_examples=300, deadline=None)
@given(payload=st.one_of(
    st.builds(lambda inputs: {"inputs": inputs}, st.lists(tensors(), max_size=4)),
    well_formed(NUMERIC, ["a", "b", "c"]), st.just({"inputs": "x"}), st.just([1]), st.just({"inputs": []})))
def test_fast_rows_agree_with_the_general_path_numeric(payload):
    _check(NUMERIC, payload)


@settings(max_examples=200, deadline=None)
@given(payload=st.one_of(st.builds(lambda inputs: {"inputs": inputs}, st.lists(tensors(), max_size=4)),
                         well_formed(MIXED, ["a", "s", "f"])))
def test_fast_rows_agree_with_the_general_path_mixed_columns(payload):
    _check(MIXED, payload)


@settings(max_examples=200, deadline=None)
@given(payload=st.one_of(st.builds(lambda inputs: {"inputs": inputs}, st.lists(tensors(), max_size=2)),
                         well_formed(UNTYPED, [])))
def test_fast_rows_agree_with_the_general_path_untyped(payload):
    _check(UNTYPED, payload)


def test_the_two_common_requests_take_the_fast_path():
    by_column = {"inputs": [{"name": c, "datatype": "FP64", "shape": [2], "data": [1.5, 2]} for c in "cab"]}
    tensor = {"inputs": [{"name": "input-0", "datatype": "FP64", "shape": [2, 3], "data": [1, 2, 3, 4, 5, 6]}]}
    assert NUMERIC.fast_rows(by_column) == ([[1.5, 1.5, 1.5], [2, 2, 2]], "row")
    assert NUMERIC.fast_rows(tensor) == ([[1, 2, 3], [4, 5, 6]], "inputs[0].data")


@settings(max_examples=200, deadline=None)
@given(result=st.one_of(st.lists(st.one_of(st.floats(), st.integers(-10**20, 10**20)), max_size=6),
                        st.lists(st.booleans(), min_size=1, max_size=3), st.lists(st.text(max_size=3), max_size=3)),
       probabilities=st.booleans())
def test_response_body_is_json_dumps_of_the_response(result, probabilities):
    prediction = {"result": result}
    if probabilities:
        prediction["probabilities"] = [[0.5, 0.5] for _ in result]
    body = NUMERIC.response_body("id-1", prediction, json.dumps(result, separators=(",", ":")))
    assert body == json.dumps({"model_name": "m", "model_version": "1", "id": "id-1",
                               "outputs": NUMERIC.outputs_of(prediction, None)}).encode()
