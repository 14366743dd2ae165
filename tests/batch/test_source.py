"""Batch scoring: the input (a file or a folder of parts) listed, digested and cut into deterministic chunks."""
from __future__ import annotations

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ml_service.batch import BatchError, source


@pytest.fixture
def frame():
    return pd.DataFrame({"a": [float(i) for i in range(25)], "b": [f"v{i}" for i in range(25)]})


def cut(parts, chunk_rows, columns=("a", "b")):
    return [(i, first, t.num_rows, t.column("a").to_pylist()[0])
            for i, first, t in source.chunks(parts, lambda part: list(columns), chunk_rows)]


def test_csv_and_parquet_are_cut_into_the_same_chunks(tmp_path, frame):
    frame.to_csv(tmp_path / "in.csv", index=False)
    frame.to_parquet(tmp_path / "in.parquet")
    csv_chunks = cut(source.list_parts(tmp_path / "in.csv"), 10)
    assert [c[:3] for c in csv_chunks] == [(0, 0, 10), (1, 10, 10), (2, 20, 5)]
    expected = [(0, 0, 10, 0.0), (1, 10, 10, 10.0), (2, 20, 5, 20.0)]
    assert cut(source.list_parts(tmp_path / "in.parquet"), 10) == expected
    assert [c[3] for c in csv_chunks] == ["0.0", "10.0", "20.0"]  # CSV values are read as text


def test_a_folder_of_parts_is_read_in_name_order_and_chunks_never_span_parts(tmp_path, frame):
    folder = tmp_path / "parts"
    folder.mkdir()
    frame.iloc[12:].to_parquet(folder / "b.parquet")
    frame.iloc[:12].to_parquet(folder / "a.parquet")
    (folder / "_SUCCESS").write_text("")
    (folder / "notes.txt").write_text("ignored")
    parts = source.list_parts(folder)
    assert [p.path.name for p in parts] == ["a.parquet", "b.parquet"]
    assert cut(parts, 10) == [(0, 0, 10, 0.0), (1, 10, 2, 10.0), (2, 12, 10, 12.0), (3, 22, 3, 22.0)]
    assert parts[0].columns() == ["a", "b"]


def test_the_digest_changes_with_the_content_and_counts_rows(tmp_path, frame):
    frame.to_csv(tmp_path / "in.csv", index=False)
    first, rows = source.digest(source.list_parts(tmp_path / "in.csv"))
    assert rows == 25
    frame.assign(a=frame.a + 1).to_csv(tmp_path / "in.csv", index=False)
    assert source.digest(source.list_parts(tmp_path / "in.csv"))[0] != first


@pytest.mark.parametrize("make, error", [
    (lambda p: p / "missing.csv", "input not found"),
    (lambda p: (p / "x.json").write_text("{}") and p / "x.json", "not a CSV or Parquet"),
    (lambda p: (p / "empty").mkdir() or p / "empty", "no .csv or .parquet"),
])
def test_bad_inputs_are_named(tmp_path, make, error):
    with pytest.raises(BatchError, match=error):
        source.list_parts(make(tmp_path))


def test_mixed_formats_are_refused(tmp_path, frame):
    frame.to_csv(tmp_path / "a.csv", index=False)
    frame.to_parquet(tmp_path / "b.parquet")
    with pytest.raises(BatchError, match="mixes CSV and Parquet"):
        source.list_parts(tmp_path)


def test_csv_chunks_are_byte_ranges_of_whole_lines_that_parse_as_pyarrow_reads_the_whole_file(tmp_path):
    import pyarrow.csv as pcsv

    lines = ["a,b", "1,x", "", "2,y", "3,z", "", "", "4,w", "5,v"]
    for newline, last in (("\n", "\n"), ("\r\n", ""), ("\r\n", "\r\n\r\n"), ("\n", "")):
        path = tmp_path / "in.csv"
        path.write_bytes((newline.join(lines) + last).encode())
        parts = source.list_parts(path)
        plan = source.scan(parts, 2)
        assert plan.rows == 5 and [r for _, _, r in plan.ranges[0]] == [2, 2, 1]
        got = [t.column("a").to_pylist() for _, _, t in source.chunks(parts, lambda part: ["a", "b"], 2)]
        assert got == [["1", "2"], ["3", "4"], ["5"]]
        assert sum(got, []) == [str(v) for v in pcsv.read_csv(path).column("a").to_pylist()]


def test_a_range_that_does_not_parse_into_its_lines_is_an_error_not_a_silent_shift(tmp_path):
    path = tmp_path / "in.csv"
    path.write_text('a,b\n1,"two\nlines"\n3,x\n')
    parts = source.list_parts(path)
    with pytest.raises(BatchError, match="not a readable CSV"):
        list(source.chunks(parts, lambda part: ["a", "b"], 1))
    with pytest.raises(BatchError, match="2 rows in bytes 4-22, 3 lines .a quoted value with a line break"):
        list(source.chunks(parts, lambda part: ["a", "b"], 10))


def test_parquet_chunks_are_read_from_their_row_groups_by_the_worker(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({"a": [float(i) for i in range(50)], "b": [f"v{i}" for i in range(50)]})
    pq.write_table(table, tmp_path / "in.parquet", row_group_size=7)  # chunks of 10 span row groups
    parts = source.list_parts(tmp_path / "in.parquet")
    slices = [payload for _, _, payload in source.tasks(parts, source.scan(parts, 10), lambda part: ["a"], 10)]
    assert all(isinstance(s, source.ParquetSlice) for s in slices)  # planned from the footer, not read
    planned = [(s.row_groups, s.offset, s.rows) for s in slices[:3]]
    assert planned == [((0, 1), 0, 10), ((1, 2), 3, 10), ((2, 3, 4), 6, 10)]
    read = [source.read_slice(s) for s in slices]
    assert [t.column_names for t in read] == [["a"]] * 5
    assert sum((t.column("a").to_pylist() for t in read), []) == table.column("a").to_pylist()
    pq.write_table(table.slice(0, 40), tmp_path / "in.parquet", row_group_size=7)  # changed under the job
    with pytest.raises(BatchError, match=r"in\.parquet: not a readable Parquet file"):
        source.read_slice(slices[-1])


def test_stream_hands_out_each_chunk_before_the_pass_is_over_and_plans_as_scan_does(tmp_path, monkeypatch):
    lines = ["a,b"] + [f"{i},x{i}" for i in range(100)]
    (tmp_path / "in.csv").write_text("\n".join(lines) + "\n")
    parts = source.list_parts(tmp_path / "in.csv")
    monkeypatch.setattr(source, "BLOCK", 64)  # many blocks: chunks are found one after another
    plan, seen = source.Scan("", 0), []
    for index, first, payload in source.stream(parts, 10, lambda part: ["a", "b"], plan):
        seen.append((index, first, payload, bool(plan.ranges)))  # ranges: set once the part's pass is over
    whole = source.scan(parts, 10)
    assert [s[:3] for s in seen] == list(source.tasks(parts, whole, lambda part: ["a", "b"], 10))
    assert not seen[0][3] and plan.complete  # the first chunks came out while the pass went on
    assert (plan.digest, plan.rows, plan.ranges) == (whole.digest, whole.rows, whole.ranges)


def test_files_named_with_a_leading_dot_or_underscore_are_not_input_parts(tmp_path, frame):
    """A folder of parts may hold a job's own bookkeeping (_rejects.csv, _SUCCESS, .tmp files): never rows."""
    folder = tmp_path / "parts"
    folder.mkdir()
    frame.to_csv(folder / "a.csv", index=False)
    frame.head(3).to_csv(folder / "_rejects.csv", index=False)
    frame.head(4).to_csv(folder / ".a.csv.123.tmp.csv", index=False)
    frame.head(5).to_csv(folder / "b.csv", index=False)
    assert [p.path.name for p in source.list_parts(folder)] == ["a.csv", "b.csv"]
    assert source.scan(source.list_parts(folder), 100).rows == 30
    (tmp_path / "_single.csv").write_text("a,b\n1,x\n")  # a file named on the command line is read as given
    assert [p.path.name for p in source.list_parts(tmp_path / "_single.csv")] == ["_single.csv"]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.integers(0, 40), chunk_rows=st.integers(1, 12), blank=st.booleans(), crlf=st.booleans())
def test_chunks_cover_every_row_once_in_order_with_chunk_rows_each_but_the_last(
        tmp_path_factory, rows, chunk_rows, blank, crlf):
    folder = tmp_path_factory.mktemp("cut")
    newline = "\r\n" if crlf else "\n"
    lines = ["a,b"] + [f"{i},x{i}" + (newline if blank and i % 7 == 3 else "") for i in range(rows)]
    (folder / "in.csv").write_bytes((newline.join(lines) + newline).encode())
    parts = source.list_parts(folder / "in.csv")
    got = list(source.chunks(parts, lambda part: ["a"], chunk_rows))
    assert [first for _, first, _ in got] == list(range(0, rows, chunk_rows))
    assert [t.num_rows for _, _, t in got] == [min(chunk_rows, rows - f) for f in range(0, rows, chunk_rows)]
    assert sum((t.column("a").to_pylist() for _, _, t in got), []) == [str(i) for i in range(rows)]
    assert source.scan(parts, chunk_rows).rows == rows
