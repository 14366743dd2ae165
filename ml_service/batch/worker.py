"""A worker process of a batch job: the score module is loaded once (init: in the job's process before the
workers are forked from it, so they share it; in each worker when they cannot be forked), then each chunk is
read (a CSV byte range, or a Parquet part's row groups), checked, scored exactly as the scoring service scores a
request (the same score module, the same result handling), and written as one Parquet part, to a temporary
name first and then renamed, so a part that exists is whole.

The cyclic garbage collector is paused while a chunk is scored: the rows handed to an INPUT = "rows" module
are a million small lists, which it would otherwise walk over and over; a chunk's objects are freed by
reference counting when it is done.
"""
from __future__ import annotations

import gc
import hashlib
import importlib
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from ml_service.batch import convert, source
from ml_service.serving.schema import InputError, Schema

_state: dict = {}


def part_name(index: int) -> str:
    """The file name of chunk index's output part."""
    return f"part-{index:05d}.parquet"


def init(model_dir: str, score_module: str, schema: Schema, output: str, model: dict, root: str) -> None:
    """Load the model once in this process (the pool's initializer); root: the repository, where the model
    projects' packages are (as `python -m` from there would find them)."""
    import sys

    if root not in sys.path:
        sys.path.insert(0, root)
    enabled = gc.isenabled()
    gc.disable()  # the score module's imports and model create many objects the collector would walk repeatedly
    try:
        scorer = importlib.import_module(score_module)
        scorer.init(model_dir)
    finally:
        if enabled:
            gc.enable()
    # BATCH_INPUT: what run() takes from a batch job, when not what it takes from a request (INPUT)
    _state.update(scorer=scorer, input=getattr(scorer, "BATCH_INPUT", getattr(scorer, "INPUT", "frame")),
                  schema=schema, output=Path(output), model=model)


def ready() -> bool:
    """Nothing: submitted once per worker so that the pool starts them all (and loads the model) at once."""
    return True


def parquet_options(schema: pa.Schema) -> dict:
    """How a part's columns are encoded: the row numbers (ascending) as deltas, dictionaries only for columns
    that repeat values (not for numbers, where pyarrow would build one per page and then drop it): a quarter
    of the default's cost to write, and half its size."""
    options = {"use_dictionary": [f.name for f in schema if f.name != "row" and not pa.types.is_floating(f.type)]}
    if "row" in schema.names and pa.types.is_integer(schema.field("row").type):
        options["column_encoding"] = {"row": "DELTA_BINARY_PACKED"}
    return options


def write_atomic(table: pa.Table, path: Path) -> str:
    """Write table to path via a temporary name and a rename; the sha256 of the file's bytes."""
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, **parquet_options(table.schema))
    data = sink.getvalue()
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(temporary, "wb") as handle:
        handle.write(data)
    os.replace(temporary, path)
    return hashlib.sha256(data).hexdigest()


def plain_numbers(result: object, n_rows: int):
    """run()'s result as a numpy array when it is one finite number (or true/false) a row, as the scoring
    service would return it; None for anything else (labels, probabilities, non-finite values), which then
    goes through the service's own handling (results.predictions), errors included."""
    import numpy as np

    if isinstance(result, dict):
        return None
    try:
        values = np.asarray(result)
    except (ValueError, TypeError):
        return None
    if values.ndim == 2 and values.shape[1:] == (1,):
        values = values[:, 0]
    kinds = {"f": "float64", "i": "int64", "b": "bool"}
    if values.ndim != 1 or len(values) != n_rows or values.dtype.kind not in kinds:
        return None
    values = values.astype(kinds[values.dtype.kind], copy=False)
    if values.dtype.kind == "f" and not np.isfinite(values).all():
        return None
    return values


def _predict(checked: convert.Checked) -> dict:
    from ml_service.serving.results import predictions

    schema, scorer = _state["schema"], _state["scorer"]
    data = convert.frame(checked, schema)
    result = scorer.run(convert.rows(data) if _state["input"] == "rows" else data)
    values = plain_numbers(result, len(data))
    return {"result": values} if values is not None else predictions(result, len(data))


def _output(rows: "object", scored: dict) -> pa.Table:
    import numpy as np

    model = _state["model"]
    columns = {"row": pa.array(rows, pa.int64()), "prediction": pa.array(scored.get("result", []))}
    for j, label in enumerate(scored.get("classes") or []):
        columns[f"probability_{label}"] = pa.array([p[j] for p in scored["probabilities"]], pa.float64())
    columns["model_version"] = pa.DictionaryArray.from_arrays(pa.array(np.zeros(len(rows), np.int32)),
                                                              pa.array([str(model["version"])]))
    table = pa.table(columns)
    return table.replace_schema_metadata({"mlops.model.name": model["name"],
                                          "mlops.model.version": str(model["version"])})


def score_chunk(index: int, first_row: int, table: "pa.Table | source.CsvRange | source.ParquetSlice") -> dict:
    """Read (a CSV range, a Parquet slice), check, score and write chunk index (its rows start at first_row);
    its counts and file digests."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        return _score_chunk(index, first_row, table if isinstance(table, pa.Table) else source.read(table))
    finally:
        if enabled:
            gc.enable()


def _score_chunk(index: int, first_row: int, table: pa.Table) -> dict:
    import numpy as np

    checked = convert.check(table, _state["schema"])
    scored = {"result": []}
    if checked.scored:
        try:
            scored = _predict(checked)
        except InputError as exc:  # the score module refused the chunk: every row of it is rejected
            checked.rejects.update({int(i): f"the model refused the rows: {exc}" for i in np.flatnonzero(checked.keep)})
            checked.keep[:] = False
            scored = {"result": []}
    kept = np.flatnonzero(checked.keep) + first_row
    out = _state["output"]
    record = {"index": index, "first_row": first_row, "rows": table.num_rows, "scored": len(kept),
              "rejected": len(checked.rejects), "file": part_name(index)}
    record["sha256"] = write_atomic(_output(kept, scored), out / record["file"])
    if checked.rejects:
        order = sorted(checked.rejects)
        rejects = pa.table({"row": pa.array([first_row + i for i in order], pa.int64()),
                            "reason": [checked.rejects[i] for i in order],
                            "values": [convert.reject_values(table, i) for i in order]})
        record["rejects_file"] = f"_rejects/{part_name(index)}"
        (out / "_rejects").mkdir(exist_ok=True)  # made by the first chunk with rejects: none, no folder
        record["rejects_sha256"] = write_atomic(rejects, out / record["rejects_file"])
    return record
