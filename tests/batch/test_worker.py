"""Batch scoring: a worker scores a chunk with a score module as the scoring service does, writes one whole
Parquet part (model version per row and in the file metadata) and the chunk's rejected rows."""
from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ml_service.batch import manifest, worker
from ml_service.config import PACKAGE_ROOT
from ml_service.serving.schema import Schema, load_schema, read_mlmodel
from tests.support.frame_score import save_classifier
from tests.support.rows_score import COLUMNS, save_regressor


def start(model_dir, module, output):
    (output / "_rejects").mkdir(parents=True)
    worker.init(str(model_dir), module, load_schema(read_mlmodel(model_dir)), str(output),
                {"name": "m", "version": "7"}, str(PACKAGE_ROOT))


def test_a_rows_module_scores_the_good_rows_and_the_bad_ones_go_to_rejects(tmp_path):
    start(save_regressor(tmp_path / "model"), "tests.support.rows_score", tmp_path / "out")
    rows = [[str(v) for v in (30, 1, 2, 3, 4, 5, 6, 7, 8, 9)] for _ in range(4)]
    rows[2][3] = "oops"
    table = pa.table({name: [r[j] for r in rows] for j, name in enumerate(COLUMNS)})
    record = worker.score_chunk(3, 300, table)
    assert record == {"index": 3, "first_row": 300, "rows": 4, "scored": 3, "rejected": 1,
                      "file": "part-00003.parquet", "sha256": record["sha256"],
                      "rejects_file": "_rejects/part-00003.parquet", "rejects_sha256": record["rejects_sha256"]}
    assert manifest.file_digest(tmp_path / "out" / record["file"]) == record["sha256"]
    part = pq.read_table(tmp_path / "out" / record["file"])
    assert part.column("row").to_pylist() == [300, 301, 303]
    assert part.column("model_version").to_pylist() == ["7"] * 3
    assert part.schema.metadata[b"mlops.model.version"] == b"7"
    predictions = part.column("prediction").to_pylist()
    assert predictions[0] == pytest.approx(predictions[1])
    rejects = pq.read_table(tmp_path / "out" / record["rejects_file"]).to_pylist()
    assert rejects[0]["row"] == 302 and rejects[0]["reason"] == "column 'f3' is not a number: 'oops'"
    assert not list((tmp_path / "out").glob(".*"))  # no temporary file left


def test_a_classifier_writes_labels_and_one_probability_column_per_class(tmp_path):
    start(save_classifier(tmp_path / "model"), "tests.support.frame_score", tmp_path / "out")
    table = pa.table({"radius": ["25.0", "9.0"], "texture": [None, "20"], "grade": ["high", None],
                      "count": ["3", "1"], "smooth": ["true", "false"]})
    record = worker.score_chunk(0, 0, table)
    assert record["scored"] == 2 and "rejects_file" not in record
    part = pq.read_table(tmp_path / "out" / record["file"])
    assert part.column_names == ["row", "prediction", "probability_benign", "probability_malignant",
                                 "model_version"]
    assert part.column("prediction").to_pylist() == ["malignant", "benign"]
    assert sum(part.slice(0, 1).to_pylist()[0][c] for c in part.column_names[2:4]) == pytest.approx(1.0)


def test_plain_numbers_take_the_fast_path_and_anything_else_the_services_handling():
    import numpy as np

    assert worker.plain_numbers([1.5, 2.0], 2).dtype == np.float64
    assert worker.plain_numbers(np.array([[1], [2]], np.int32), 2).tolist() == [1, 2]
    assert worker.plain_numbers(np.array([1.0], np.float32), 1).dtype == np.float64
    for other in (["a", "b"], [1.0, float("nan")], {"result": [1.0, 2.0]}, [[1.0, 2.0], [3.0, 4.0]], [1.0]):
        assert worker.plain_numbers(other, 2) is None


def test_a_worker_reads_its_own_csv_range(tmp_path):
    from ml_service.batch import source

    start(save_regressor(tmp_path / "model"), "tests.support.rows_score", tmp_path / "out")
    path = tmp_path / "in.csv"
    path.write_text(",".join(COLUMNS) + "\n" + "".join(",".join(["30"] + ["1"] * 9) + "\n" for _ in range(5)))
    parts = source.list_parts(path)
    (chunk, *_), = source.scan(parts, 10).ranges.values()
    record = worker.score_chunk(0, 0, source.CsvRange(str(path), *chunk, tuple(COLUMNS), tuple(COLUMNS)))
    assert (record["rows"], record["scored"]) == (5, 5)
    assert pq.read_table(tmp_path / "out" / record["file"]).column("row").to_pylist() == [0, 1, 2, 3, 4]


def test_numeric_csv_columns_are_parsed_as_numbers_and_a_bad_value_rejects_its_row_alone(tmp_path):
    from ml_service.batch import source

    start(save_regressor(tmp_path / "model"), "tests.support.rows_score", tmp_path / "out")
    path = tmp_path / "in.csv"
    lines = [",".join(["30"] + [str(i)] * 9) for i in range(5)]
    path.write_text(",".join(COLUMNS) + "\n" + "\n".join(lines) + "\n")
    (chunk, *_), = source.scan(source.list_parts(path), 10).ranges.values()
    good = source.CsvRange(str(path), *chunk, tuple(COLUMNS), tuple(COLUMNS), tuple(COLUMNS))
    assert {str(t) for t in source.read_range(good).schema.types} == {"double"}  # no text to cast
    as_text = worker.score_chunk(0, 0, source.CsvRange(str(path), *chunk, tuple(COLUMNS), tuple(COLUMNS)))
    assert worker.score_chunk(1, 0, good)["sha256"] == as_text["sha256"]  # the same part, byte for byte
    lines[3] = lines[3].replace(",3,", ",x3,", 1)
    path.write_text(",".join(COLUMNS) + "\n" + "\n".join(lines) + "\n")
    (chunk, *_), = source.scan(source.list_parts(path), 10).ranges.values()
    record = worker.score_chunk(2, 0, source.CsvRange(str(path), *chunk, tuple(COLUMNS), tuple(COLUMNS),
                                                      tuple(COLUMNS)))
    assert (record["scored"], record["rejected"]) == (4, 1)
    rejects = pq.read_table(tmp_path / "out" / record["rejects_file"]).to_pylist()
    assert [(r["row"], r["reason"]) for r in rejects] == [(3, "column 'f1' is not a number: 'x3'")]


def test_a_part_encodes_row_numbers_as_deltas_and_dictionaries_only_repeated_values(tmp_path):
    start(save_regressor(tmp_path / "model"), "tests.support.rows_score", tmp_path / "out")
    table = pa.table({name: [float(30 + i + j) for i in range(1000)] for j, name in enumerate(COLUMNS)})
    record = worker.score_chunk(0, 5000, table)
    metadata = pq.ParquetFile(tmp_path / "out" / record["file"]).metadata.row_group(0)
    encodings = {metadata.column(i).path_in_schema: set(metadata.column(i).encodings) for i in range(3)}
    assert "DELTA_BINARY_PACKED" in encodings["row"] and "RLE_DICTIONARY" not in encodings["row"]
    assert "RLE_DICTIONARY" not in encodings["prediction"]
    assert "RLE_DICTIONARY" in encodings["model_version"]
    assert pq.read_table(tmp_path / "out" / record["file"]).column("row").to_pylist() == list(range(5000, 6000))


def test_the_model_is_loaded_with_the_cyclic_collector_paused_and_it_runs_again_after(tmp_path):
    import gc
    import sys

    (tmp_path / "gc_probe_score.py").write_text(
        "import gc\nENABLED_AT_IMPORT = gc.isenabled()\n"
        "def init(model_dir):\n    global ENABLED_AT_INIT\n    ENABLED_AT_INIT = gc.isenabled()\n")
    (tmp_path / "out" / "_rejects").mkdir(parents=True)
    model_dir = save_regressor(tmp_path / "model")
    assert gc.isenabled()
    try:
        worker.init(str(model_dir), "gc_probe_score", load_schema(read_mlmodel(model_dir)), str(tmp_path / "out"),
                    {"name": "m", "version": "1"}, str(tmp_path))
        probe = sys.modules["gc_probe_score"]
        assert (probe.ENABLED_AT_IMPORT, probe.ENABLED_AT_INIT) == (False, False)
        assert gc.isenabled()
    finally:
        sys.modules.pop("gc_probe_score", None)
        sys.path.remove(str(tmp_path))


def test_the_rows_the_model_refuses_are_rejected_not_scored(tmp_path):
    (tmp_path / "out" / "_rejects").mkdir(parents=True)
    worker.init(str(tmp_path), "tests.support.failing_score", Schema(), str(tmp_path / "out"),
                {"name": "m", "version": "1"}, str(PACKAGE_ROOT))
    record = worker.score_chunk(0, 10, pa.table({"mode": ["7", "7", "x"], "b": ["1", "2", "3"]}))
    assert (record["rows"], record["scored"], record["rejected"]) == (3, 0, 3)
    assert pq.read_table(tmp_path / "out" / record["file"]).num_rows == 0
    rejects = pq.read_table(tmp_path / "out" / record["rejects_file"]).to_pylist()
    assert [(r["row"], r["reason"]) for r in rejects] == [
        (10, "the model refused the rows: mode 7 refuses every row"),
        (11, "the model refused the rows: mode 7 refuses every row"),
        (12, "column 'mode' is not a number: 'x'")]
