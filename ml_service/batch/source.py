"""The input of a batch job: a CSV or Parquet file, or a folder of such parts, planned and read in chunks.

Chunks are deterministic (chunk_rows rows, never spanning two parts), so a resumed job cuts the input
exactly as the first attempt did. One pass over the bytes (scan) gives the input's digest and, for a CSV,
the byte range of whole lines each chunk covers: the workers read and parse their own ranges, the job's
process only plans. A line break ends a row (values must not contain line breaks; blank lines are
skipped). CSV values are read as text, so that one bad value rejects one row (see convert.py) instead of
failing the whole file; Parquet keeps its types and is read in order by the job's process (it is cheap).
"""
from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from ml_service.batch import BatchError

FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}
BLOCK = 4 << 20
NEWLINE, RETURN = 10, 13


@dataclass(frozen=True)
class Part:
    """One input file."""

    path: Path
    format: str

    def columns(self) -> list[str]:
        """The column names of this part (a CSV's header)."""
        if self.format == "parquet":
            import pyarrow.parquet as pq

            return list(pq.ParquetFile(self.path).schema_arrow.names)
        with open(self.path, newline="", encoding="utf-8") as handle:
            header = next(csv.reader(handle), None)
        if not header:
            raise BatchError(f"{self.path}: empty CSV file (no header)")
        return header


@dataclass(frozen=True)
class CsvRange:
    """Whole lines of a CSV part holding `rows` rows (bytes start..stop), read and parsed by a worker."""

    path: str
    start: int
    stop: int
    rows: int
    header: tuple
    columns: tuple


@dataclass
class Scan:
    """The input's digest, its row count (exact for CSV and Parquet), and each CSV part's chunk ranges."""

    digest: str
    rows: int
    ranges: dict = field(default_factory=dict)  # part index -> [(start, stop, rows), ...]


def list_parts(path: Path) -> list[Part]:
    """The parts of an input: the file itself, or the CSV/Parquet files of a folder in name order."""
    if not path.exists():
        raise BatchError(f"input not found: {path}")
    if path.is_file():
        files = [path]
    else:
        files = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith((".", "_")))
    parts = [Part(p, FORMATS[p.suffix.lower()]) for p in files if p.suffix.lower() in FORMATS]
    if path.is_file() and not parts:
        raise BatchError(f"{path}: not a CSV or Parquet file (.csv, .parquet)")
    if not parts:
        raise BatchError(f"{path}: no .csv or .parquet files in this folder")
    if len({p.format for p in parts}) > 1:
        raise BatchError(f"{path}: mixes CSV and Parquet parts; use one format")
    return parts


class _Lines:
    """Cuts a CSV's bytes, block by block, into ranges of chunk_rows rows (the header line and blank lines
    are not rows)."""

    def __init__(self, chunk_rows: int):
        self.chunk_rows, self.rows, self.ranges = chunk_rows, 0, []
        self.start = None    # byte where the current chunk starts (None: the header is not read yet)
        self.previous = -1   # position of the last line break seen
        self.last_byte = 0   # the byte before the current block

    def feed(self, block: bytes, offset: int) -> None:
        import numpy as np

        data = np.frombuffer(block, np.uint8)
        breaks = np.flatnonzero(data == NEWLINE) + offset
        if self.start is None:
            if not len(breaks):
                return
            self.previous = int(breaks[0])
            self.start, breaks = self.previous + 1, breaks[1:]
        if len(breaks):
            starts = np.concatenate(([self.previous + 1], breaks[:-1] + 1))
            before = breaks - 1 - offset
            prior = np.where(before >= 0, data[np.maximum(before, 0)], self.last_byte)
            lengths = breaks - starts
            rows = breaks[(lengths > 1) | ((lengths == 1) & (prior != RETURN))]
            numbers = self.rows + np.arange(1, len(rows) + 1)
            for end in rows[numbers % self.chunk_rows == 0]:
                self.ranges.append((self.start, int(end) + 1, self.chunk_rows))
                self.start = int(end) + 1
            self.rows += len(rows)
            self.previous = int(breaks[-1])
        self.last_byte = int(data[-1]) if len(data) else self.last_byte

    def close(self, size: int) -> list[tuple[int, int, int]]:
        """The ranges, the last one to the end of the file (a last line without a line break is a row)."""
        if self.start is None:
            return []
        tail = size - (self.previous + 1)
        if tail > 1 or (tail == 1 and self.last_byte != RETURN):
            self.rows += 1
        left = self.rows - len(self.ranges) * self.chunk_rows
        if left:
            self.ranges.append((self.start, size, left))
        return self.ranges


def scan(parts: list[Part], chunk_rows: int) -> Scan:
    """One pass over every part's bytes: sha256 over names and bytes, the rows, CSV chunk ranges."""
    sha, result = hashlib.sha256(), Scan("", 0)
    for i, part in enumerate(parts):
        sha.update(part.path.name.encode() + b"\0")
        lines = _Lines(chunk_rows) if part.format == "csv" else None
        offset = 0
        with open(part.path, "rb") as handle:
            while block := handle.read(BLOCK):
                sha.update(block)
                if lines:
                    lines.feed(block, offset)
                offset += len(block)
        if lines:
            result.ranges[i] = lines.close(offset)
            result.rows += lines.rows
        else:
            import pyarrow.parquet as pq

            result.rows += pq.ParquetFile(part.path).metadata.num_rows
    result.digest = sha.hexdigest()
    return result


def digest(parts: list[Part]) -> tuple[str, int]:
    """(sha256 over every part's name and bytes, the number of rows)."""
    result = scan(parts, 1 << 62)
    return result.digest, result.rows


def _csv_options(header, columns):
    import pyarrow as pa
    from pyarrow import csv as pcsv

    return pcsv.ConvertOptions(column_types={c: pa.string() for c in header}, include_columns=list(columns),
                               strings_can_be_null=True, quoted_strings_can_be_null=True)


def read_range(chunk: CsvRange):
    """The rows of a CSV range as a pyarrow Table of text columns (a BatchError when they do not parse)."""
    import pyarrow as pa
    from pyarrow import csv as pcsv

    with open(chunk.path, "rb") as handle:
        handle.seek(chunk.start)
        data = handle.read(chunk.stop - chunk.start)
    options = pcsv.ReadOptions(column_names=list(chunk.header), use_threads=False, block_size=max(len(data), 1))
    try:
        table = pcsv.read_csv(pa.BufferReader(data), read_options=options,
                              convert_options=_csv_options(chunk.header, chunk.columns))
    except pa.ArrowInvalid as exc:
        raise BatchError(f"{chunk.path}: not a readable CSV: {exc}") from None
    if table.num_rows != chunk.rows:
        raise BatchError(f"{chunk.path}: {table.num_rows} rows in bytes {chunk.start}-{chunk.stop}, {chunk.rows} "
                         "lines (a quoted value with a line break?)")
    return table


def _parquet_tables(part: Part, columns: list[str], chunk_rows: int):
    """Tables of chunk_rows rows (the last one shorter) of a Parquet part, in order."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    pending, count = [], 0
    for batch in pq.ParquetFile(part.path).iter_batches(batch_size=min(chunk_rows, 1 << 16), columns=columns):
        pending.append(batch)
        count += batch.num_rows
        while count >= chunk_rows:
            table = pa.Table.from_batches(pending)
            yield table.slice(0, chunk_rows)
            rest = table.slice(chunk_rows)
            pending, count = rest.to_batches(), rest.num_rows
    if count:
        yield pa.Table.from_batches(pending)


def tasks(parts: list[Part], plan: Scan, columns_of, chunk_rows: int) -> Iterator[tuple[int, int, object]]:
    """(chunk index, number of its first row in the whole input, a CsvRange or a pyarrow Table) for every
    chunk, in order; columns_of(part) names the columns to read from a part."""
    index = first = 0
    for i, part in enumerate(parts):
        if part.format == "csv":
            header, columns = tuple(part.columns()), tuple(columns_of(part))
            payloads = (CsvRange(str(part.path), start, stop, rows, header, columns)
                        for start, stop, rows in plan.ranges[i])
        else:
            payloads = _parquet_tables(part, columns_of(part), chunk_rows)
        for payload in payloads:
            yield index, first, payload
            index += 1
            first += payload.rows if isinstance(payload, CsvRange) else payload.num_rows


def chunks(parts: list[Part], columns_of, chunk_rows: int) -> Iterator[tuple[int, int, object]]:
    """(chunk index, number of its first row in the whole input, pyarrow Table) for every chunk, in order."""
    plan = scan(parts, chunk_rows)
    for index, first, payload in tasks(parts, plan, columns_of, chunk_rows):
        yield index, first, read_range(payload) if isinstance(payload, CsvRange) else payload
