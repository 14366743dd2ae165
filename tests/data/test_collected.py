"""Inputs the scoring service collected, as tables (data/collected.py): a time window includes both its ends,
one model version's rows only when asked, torn lines counted not fatal; labels joined by (request id, row)."""
from __future__ import annotations

import csv
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ml_service.data.collected import CollectedError, join_labels, read, read_labels


def collect(folder, records, name="predictions-0001.jsonl", tail=""):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text("".join(json.dumps(r) + "\n" for r in records) + tail)
    return folder


def record(stamp, request="r", version="1", rows=((1, 2),), predictions=(0.5,)):
    return {"time": stamp, "request_id": request, "model_version": version, "inputs": [list(r) for r in rows],
            "predictions": list(predictions)}


def test_the_window_includes_both_ends_and_nothing_outside_it(tmp_path):
    folder = collect(tmp_path / "c", [record(10.0, "a"), record(20.0, "b"), record(30.0, "c")])
    assert [k for k, _ in read(folder, since=20.0).keys] == ["b", "c"]
    assert [k for k, _ in read(folder, since=20.000001).keys] == ["c"]
    assert [k for k, _ in read(folder, until=20.0).keys] == ["a", "b"]
    assert [k for k, _ in read(folder, until=19.999999).keys] == ["a"]
    assert [k for k, _ in read(folder, since=20.0, until=20.0).keys] == ["b"]
    assert [k for k, _ in read(folder).keys] == ["a", "b", "c"]


@settings(max_examples=100, deadline=None)
@given(stamps=st.lists(st.integers(0, 50), max_size=15), since=st.one_of(st.none(), st.integers(0, 50)),
       until=st.one_of(st.none(), st.integers(0, 50)))
def test_a_row_is_read_exactly_when_its_time_is_within_the_window(tmp_path_factory, stamps, since, until):
    folder = collect(tmp_path_factory.mktemp("c"), [record(float(s), f"req-{n}") for n, s in enumerate(stamps)])
    found = read(folder, since=since, until=until)
    expected = [f"req-{n}" for n, s in enumerate(stamps)
                if (since is None or s >= since) and (until is None or s <= until)]
    assert [k for k, _ in found.keys] == expected
    assert found.times == [float(stamps[int(k[len("req-"):])]) for k in expected]


def test_only_the_asked_model_versions_rows_and_every_row_of_a_request(tmp_path):
    folder = collect(tmp_path / "c", [record(1.0, "a", version="1", rows=((1, 2), (3, 4)), predictions=(7,)),
                                      record(2.0, "b", version="2"), record(3.0, "c", version="10")])
    one = read(folder, model_version=1)
    assert one.keys == [("a", 0), ("a", 1)] and one.rows == [[1, 2], [3, 4]]
    assert one.predictions == [7, None] and one.versions == ["1", "1"] and one.times == [1.0, 1.0]
    assert [k for k, _ in read(folder, model_version="2").keys] == ["b"]
    assert [k for k, _ in read(folder).keys] == ["a", "a", "b", "c"]


def test_torn_or_foreign_lines_are_counted_and_skipped_and_files_read_in_name_order(tmp_path):
    folder = collect(tmp_path / "c", [record(2.0, "second")], name="predictions-0002.jsonl",
                     tail='{"time": 3.0, "inputs": [[1')
    collect(folder, [record(1.0, "first"), {"no": "time"}], name="predictions-0001.jsonl")
    (folder / "other.jsonl").write_text(json.dumps(record(0.0, "not collected")) + "\n")
    found = read(folder)
    assert [k for k, _ in found.keys] == ["first", "second"] and found.bad_lines == 2
    with pytest.raises(CollectedError, match="no such folder"):
        read(tmp_path / "absent")


def write_csv(path, rows):
    with open(path, "w", newline="") as handle:
        csv.writer(handle).writerows(rows)
    return path


def test_labels_are_keyed_by_request_and_row_which_defaults_to_zero(tmp_path):
    path = write_csv(tmp_path / "l.csv", [["request_id", "row", "y"], ["a", "", "1"], ["a", "1", "2"], ["b", "0", "3"]])
    assert read_labels(path, "y") == {("a", 0): "1", ("a", 1): "2", ("b", 0): "3"}
    no_rows = write_csv(tmp_path / "n.csv", [["request_id", "y"], ["a", "5"]])
    assert read_labels(no_rows, "y") == {("a", 0): "5"}
    bad = write_csv(tmp_path / "b.csv", [["request_id", "row", "y"], ["a", "0", "1"], ["a", "x", "2"]])
    with pytest.raises(CollectedError) as refused:
        read_labels(bad, "y")
    assert str(refused.value) == f"{bad}: line 3: row 'x' is not a whole number"
    missing = write_csv(tmp_path / "m.csv", [["request", "z"], ["a", "1"]])
    with pytest.raises(CollectedError) as columns:
        read_labels(missing, "y")
    assert str(columns.value) == f"{missing}: the labels file needs the column(s) request_id, y (has: request, z)"
    with pytest.raises(CollectedError, match="labels file not found"):
        read_labels(tmp_path / "absent.csv", "y")


def test_join_writes_base_rows_then_labelled_rows_in_the_base_column_order(tmp_path):
    folder = collect(tmp_path / "c", [record(1.0, "a", rows=((1, 2), (3, 4))), record(2.0, "b", rows=((5, None),))])
    base = write_csv(tmp_path / "base.csv", [["y", "x1", "x2"], ["9", "8", "7"]])
    out = tmp_path / "out.csv"
    labels = {("a", 1): "40", ("b", 0): "50", ("gone", 0): "60"}
    counts = join_labels(read(folder), labels, ["x1", "x2"], "y", base, out)
    assert counts == {"base_rows": 1, "added": 2, "unlabelled": 1, "labels_without_input": 1}
    assert list(csv.reader(out.open())) == [["y", "x1", "x2"], ["9", "8", "7"], ["40", "3", "4"], ["50", "5", ""]]
    fresh = tmp_path / "fresh.csv"
    assert join_labels(read(folder), {("a", 0): "1"}, ["x1", "x2"], "y", None, fresh)["added"] == 1
    assert list(csv.reader(fresh.open())) == [["x1", "x2", "y"], ["1", "2", "1"]]
    with pytest.raises(CollectedError) as width:
        join_labels(read(folder), {("a", 0): "1"}, ["x1", "x2", "x3"], "y", None, tmp_path / "w.csv")
    assert str(width.value) == "request a row 0: 2 values, the data set has 3 features (x1, x2, x3)"
