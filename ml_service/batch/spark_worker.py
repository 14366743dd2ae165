"""The executor side of a Spark batch job: a mapInArrow function over the project's score module.

Each Spark task reads its input splits with Spark's own reader (CSV as text, Parquet as typed) and hands the
rows here as Arrow batches, with two columns Spark adds: the file and the byte offset of the split each row
came from. Rows of one split arrive together and in file order, so a split is collected whole, then checked,
scored and written exactly as the local engine does a chunk (worker.score_chunk: the same schema checks and
reject reasons, the same score module, the same Parquet part), as part-NNNNN.parquet, NNNNN being the
split's place in the input; its row numbers are the split's first row (counted by the driver) plus the
position in the split. Once the part (and its rejects) are renamed into place, the task commits the split:
`_commits/part-NNNNN.json` holds the record the local engine keeps in its manifest (counts, sha256 of the
files). A task that dies before its commit leaves nothing that counts, and a retried task or a resumed job
writes the very same bytes again; splits committed by an earlier attempt are skipped.

The model is loaded once per Python worker process (Spark reuses them from task to task).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

FILE_COLUMN = "_mlops_file"
BLOCK_COLUMN = "_mlops_block"
COMMITS = "_commits"
RESULT_SCHEMA = "index long, record string"
# What the local engine's CSV reader (pyarrow's defaults) reads as null; Spark reads only "" as null.
CSV_NULLS = ("", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN", "N/A", "NA",
             "NULL", "NaN", "n/a", "nan", "null")

_loaded: dict = {}


def commit_name(index: int) -> str:
    """The commit record of split index, relative to the output folder."""
    from ml_service.batch.worker import part_name

    return f"{COMMITS}/{part_name(index)[:-len('.parquet')]}.json"


def split_key(file_path: str, block_start: int) -> str:
    """The key of a split: its file's name (unquoted: Spark gives a URI) and the byte where it starts."""
    from urllib.parse import unquote

    return f"{unquote(file_path.rstrip('/').rsplit('/', 1)[-1])}@{int(block_start)}"


def _ensure_model(job: dict) -> None:
    """Load the model in this Python worker once per job (the folder Spark shipped, or the local one)."""
    from ml_service.batch import worker

    key = (job["model_dir"], job["output"], job["model"]["version"])
    if _loaded.get("key") == key:
        return
    directory = job["model_dir"]
    if job.get("shipped"):
        from pyspark import SparkFiles

        directory = SparkFiles.get(job["shipped"])
    worker.init(directory, job["score_module"], job["schema"], job["output"], job["model"], job["root"])
    _loaded["key"] = key


def _runs(batch):
    """(file name, block start, the rows of batch from that split) for each run of rows of one split."""
    import numpy as np

    files, blocks = batch.column(FILE_COLUMN), batch.column(BLOCK_COLUMN)
    data = batch.drop_columns([FILE_COLUMN, BLOCK_COLUMN]) if hasattr(batch, "drop_columns") else \
        batch.select([n for n in batch.schema.names if n not in (FILE_COLUMN, BLOCK_COLUMN)])
    n = batch.num_rows
    if n == 0:
        return
    if files[0] == files[n - 1] and blocks[0] == blocks[n - 1]:  # splits arrive one after the other
        yield files[0].as_py(), blocks[0].as_py(), data
        return
    block_values = blocks.to_numpy(zero_copy_only=False)
    file_values = np.asarray(files.to_pylist(), dtype=object)
    change = np.flatnonzero((block_values[1:] != block_values[:-1]) | (file_values[1:] != file_values[:-1])) + 1
    starts = [0, *change.tolist()]
    for start, stop in zip(starts, [*change.tolist(), n]):
        yield file_values[start], int(block_values[start]), data.slice(start, stop - start)


def _csv_nulls(table):
    """table with the text the local engine reads as null (pyarrow's CSV defaults) made null."""
    import pyarrow as pa
    import pyarrow.compute as pc

    nulls = pa.array(CSV_NULLS)
    columns = []
    for column in table.columns:
        if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            column = pc.if_else(pc.is_in(column, value_set=nulls.cast(column.type)), pa.scalar(None, column.type),
                                column)
        columns.append(column)
    return pa.Table.from_arrays(columns, names=table.column_names)


def _as_numbers(table, numeric):
    """table with its numeric columns as float64 when every value of them is a number, as the local engine reads
    a CSV chunk (source.read_range); else as it is, text, so that the bad row alone is rejected."""
    import pyarrow as pa
    import pyarrow.compute as pc

    columns = list(table.columns)
    try:
        for i, name in enumerate(table.column_names):
            if name in numeric:
                columns[i] = pc.cast(columns[i], pa.float64())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return table
    return pa.Table.from_arrays(columns, names=table.column_names)


def _csv_numbers(table, numeric):
    """_as_numbers(_csv_nulls(table), numeric) at a fraction of its cost for the common split, every numeric
    column text that casts to float64 with no NaN: then no value of those columns is one of CSV_NULLS (the
    only ones that cast are the NaN spellings), so they need no null matching; the other columns get
    _csv_nulls's. Any other split (a value that is not a number, a NaN spelling, a column not text) takes the
    two steps themselves, so the result is theirs, bad rows and reasons alike."""
    import pyarrow as pa
    import pyarrow.compute as pc

    columns = list(table.columns)
    for i, name in enumerate(table.column_names):
        if name not in numeric:
            continue
        if not pa.types.is_string(columns[i].type):
            return _as_numbers(_csv_nulls(table), numeric)
        try:
            values = pc.cast(columns[i], pa.float64())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return _as_numbers(_csv_nulls(table), numeric)
        if pc.any(pc.is_nan(values)).as_py():
            return _as_numbers(_csv_nulls(table), numeric)
        columns[i] = values
    rest = [i for i, name in enumerate(table.column_names) if name not in numeric]
    if rest:
        text = _csv_nulls(table.select(rest))
        for k, i in enumerate(rest):
            columns[i] = text.column(k)
    return pa.Table.from_arrays(columns, names=table.column_names)


def _flush(job: dict, key, pieces: list):
    """Score and commit one split's rows; its record (None when an earlier attempt committed it)."""
    import pyarrow as pa

    from ml_service.batch import BatchError, worker

    split = job["splits"].get(split_key(key[0], key[1]))
    if split is None:
        raise BatchError(f"{key[0]} from byte {key[1]}: a split the driver did not count (the input changed?)")
    index, first_row, rows = split
    if index in job["done"]:
        return None
    table = pa.Table.from_batches(pieces)
    if job.get("csv"):
        table = _csv_numbers(table, job["numeric"])
    if table.num_rows != rows:
        raise BatchError(f"{key[0]} from byte {key[1]}: {table.num_rows} rows, {rows} counted (the input changed?)")
    _ensure_model(job)
    record = worker.score_chunk(index, first_row, table)
    record["split"] = split_key(key[0], key[1])
    path = Path(job["output"]) / commit_name(index)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(record, sort_keys=True))
    os.replace(temporary, path)
    return record


def score_partition(job: dict):
    """The mapInArrow function of a job: batches of a partition in, one (index, record) row a split out."""
    import pyarrow as pa

    def run(batches):
        current, pieces, records = None, [], []
        for batch in batches:
            for file, block, rows in _runs(batch):
                if (file, block) != current:
                    if current is not None:
                        records.append(_flush(job, current, pieces))
                    current, pieces = (file, block), []
                pieces.append(rows)
        if current is not None:
            records.append(_flush(job, current, pieces))
        done = [r for r in records if r is not None]
        yield pa.RecordBatch.from_pydict({"index": [r["index"] for r in done],
                                          "record": [json.dumps(r, sort_keys=True) for r in done]},
                                         schema=pa.schema([("index", pa.int64()), ("record", pa.string())]))
    return run
