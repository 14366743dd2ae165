"""The input of a batch job: a CSV or Parquet file, or a folder of such parts, planned and read in chunks.

Chunks are deterministic (chunk_rows rows, never spanning two parts), so a resumed job cuts the input
exactly as the first attempt did. One pass over the bytes gives the input's digest and, for a CSV, the
byte range of whole lines each chunk covers; a Parquet part's chunks come from its footer (row groups and
their row counts). The workers read and parse their own chunks (a CSV byte range; a Parquet chunk's row
groups, decoded only as far as the chunk goes); the job's process only plans, and hands out each chunk as
soon as the pass has found it (stream), so scoring starts before the pass is over.

A line break ends a CSV row (values must not contain line breaks; blank lines are skipped). CSV values are
read as text, so that one bad value rejects one row (see convert.py) instead of failing the whole file;
Parquet keeps its types.
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
    """Whole lines of a CSV part holding `rows` rows (bytes start..stop), read and parsed by a worker;
    the `numeric` columns are parsed as numbers first (see read_range)."""

    path: str
    start: int
    stop: int
    rows: int
    header: tuple
    columns: tuple
    numeric: tuple = ()


@dataclass(frozen=True)
class ParquetSlice:
    """rows rows of a Parquet part, from row `offset` of its row group row_groups[0] on (read by a worker)."""

    path: str
    row_groups: tuple
    offset: int
    rows: int
    columns: tuple


@dataclass
class Scan:
    """The input's digest, its row count (exact for CSV and Parquet), and each CSV part's chunk ranges;
    complete once the pass over every byte is over."""

    digest: str
    rows: int
    ranges: dict = field(default_factory=dict)  # part index -> [(start, stop, rows), ...]
    complete: bool = False


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


def _pass(parts: list[Part], chunk_rows: int, plan: Scan) -> Iterator[tuple[int, tuple]]:
    """One pass over every part's bytes (sha256 over names and bytes, the rows, CSV chunk ranges), yielding
    (part index, (start, stop, rows)) for each CSV chunk as soon as it is found, and (part index, None) once
    before each Parquet part is read; plan is complete at the end."""
    sha = hashlib.sha256()
    for i, part in enumerate(parts):
        sha.update(part.path.name.encode() + b"\0")
        lines = _Lines(chunk_rows) if part.format == "csv" else None
        if lines is None:
            yield i, None
        offset, found = 0, 0
        with open(part.path, "rb") as handle:
            while block := handle.read(BLOCK):
                sha.update(block)
                if lines:
                    lines.feed(block, offset)
                    for found in range(found, len(lines.ranges)):
                        yield i, lines.ranges[found]
                    found = len(lines.ranges)
                offset += len(block)
        if lines:
            plan.ranges[i] = lines.close(offset)
            for chunk in plan.ranges[i][found:]:
                yield i, chunk
            plan.rows += lines.rows
        else:
            plan.rows += _parquet_file(part).metadata.num_rows
    plan.digest = sha.hexdigest()
    plan.complete = True


def scan(parts: list[Part], chunk_rows: int) -> Scan:
    """One pass over every part's bytes: sha256 over names and bytes, the rows, CSV chunk ranges."""
    plan = Scan("", 0)
    for _ in _pass(parts, chunk_rows, plan):
        pass
    return plan


def digest(parts: list[Part]) -> tuple[str, int]:
    """(sha256 over every part's name and bytes, the number of rows)."""
    result = scan(parts, 1 << 62)
    return result.digest, result.rows


def _csv_options(header, columns, numeric=()):
    import pyarrow as pa
    from pyarrow import csv as pcsv

    types = {c: pa.float64() if c in numeric else pa.string() for c in header}
    return pcsv.ConvertOptions(column_types=types, include_columns=list(columns), strings_can_be_null=True,
                               quoted_strings_can_be_null=True)


def read_range(chunk: CsvRange):
    """The rows of a CSV range as a pyarrow Table (a BatchError when they do not parse). The numeric columns
    are parsed as float64 (what convert.py would cast their text to, at a fraction of the cost); when a value
    is not a number the whole range is read again as text, so that convert.py rejects that row alone."""
    import pyarrow as pa
    from pyarrow import csv as pcsv

    with open(chunk.path, "rb") as handle:
        handle.seek(chunk.start)
        data = handle.read(chunk.stop - chunk.start)
    options = pcsv.ReadOptions(column_names=list(chunk.header), use_threads=False, block_size=max(len(data), 1))
    table = None
    if chunk.numeric:
        try:
            table = pcsv.read_csv(pa.BufferReader(data), read_options=options,
                                  convert_options=_csv_options(chunk.header, chunk.columns, chunk.numeric))
        except pa.ArrowInvalid:
            pass  # a value that is not a number (or a line that does not parse): as text, below
    try:
        if table is None:
            table = pcsv.read_csv(pa.BufferReader(data), read_options=options,
                                  convert_options=_csv_options(chunk.header, chunk.columns))
    except pa.ArrowInvalid as exc:
        raise BatchError(f"{chunk.path}: not a readable CSV: {exc}") from None
    if table.num_rows != chunk.rows:
        raise BatchError(f"{chunk.path}: {table.num_rows} rows in bytes {chunk.start}-{chunk.stop}, {chunk.rows} "
                         "lines (a quoted value with a line break?)")
    return table


def _parquet_file(part: Part):
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        return pq.ParquetFile(part.path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise BatchError(f"{part.path}: not a readable Parquet file: {exc}") from None


def parquet_slices(part: Part, columns: list[str], chunk_rows: int) -> Iterator[ParquetSlice]:
    """The chunks of a Parquet part (chunk_rows rows each, the last one shorter), from its footer alone."""
    metadata = _parquet_file(part).metadata
    sizes = [metadata.row_group(g).num_rows for g in range(metadata.num_row_groups)]
    group, group_start, position = 0, 0, 0
    while position < metadata.num_rows:
        while group_start + sizes[group] <= position:  # the row group holding row `position`
            group_start += sizes[group]
            group += 1
        rows = min(chunk_rows, metadata.num_rows - position)
        last, end = group, group_start + sizes[group]
        while end < position + rows:
            last += 1
            end += sizes[last]
        yield ParquetSlice(str(part.path), tuple(range(group, last + 1)), position - group_start, rows,
                           tuple(columns))
        position += rows


def read_slice(chunk: ParquetSlice):
    """The rows of a Parquet chunk as a pyarrow Table: its row groups decoded batch by batch, only as far as
    the chunk goes (a chunk in the middle of a large row group still decodes the rows before it)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    batches, position, stop = [], 0, chunk.offset + chunk.rows
    try:
        reader = pq.ParquetFile(chunk.path)
        for batch in reader.iter_batches(batch_size=min(max(chunk.rows, 1024), 1 << 16), row_groups=chunk.row_groups,
                                         columns=list(chunk.columns), use_threads=False):
            end = position + batch.num_rows
            begin = max(chunk.offset, position)
            if end > begin:
                batches.append(batch.slice(begin - position, min(end, stop) - begin))
            position = end
            if position >= stop:
                break
        schema = reader.schema_arrow
    except (pa.ArrowInvalid, OSError) as exc:
        raise BatchError(f"{chunk.path}: not a readable Parquet file: {exc}") from None
    table = pa.Table.from_batches(batches, schema=pa.schema([schema.field(c) for c in chunk.columns]))
    if table.num_rows != chunk.rows:
        raise BatchError(f"{chunk.path}: {table.num_rows} rows in row groups {list(chunk.row_groups)} from "
                         f"{chunk.offset}, {chunk.rows} expected (the file changed?)")
    return table


def read(payload):
    """The rows of a chunk (a CsvRange or a ParquetSlice) as a pyarrow Table."""
    return read_range(payload) if isinstance(payload, CsvRange) else read_slice(payload)


def _csv_fields(part: Part, columns_of, numeric) -> tuple:
    """(header, columns to read, those of them to parse as numbers) of a CSV part."""
    header, columns = tuple(part.columns()), tuple(columns_of(part))
    return header, columns, tuple(c for c in columns if c in numeric)


def _payloads(part: Part, found, columns_of, chunk_rows: int, numeric):
    if part.format == "csv":
        fields = _csv_fields(part, columns_of, numeric)
        return (CsvRange(str(part.path), start, stop, rows, *fields) for start, stop, rows in found)
    return parquet_slices(part, columns_of(part), chunk_rows)


def _numbered(payloads) -> Iterator[tuple[int, int, object]]:
    index = first = 0
    for payload in payloads:
        yield index, first, payload
        index += 1
        first += payload.rows


def tasks(parts: list[Part], plan: Scan, columns_of, chunk_rows: int,
          numeric: frozenset = frozenset()) -> Iterator[tuple[int, int, object]]:
    """(chunk index, number of its first row in the whole input, a CsvRange or a ParquetSlice) for every
    chunk, in order, from a complete plan; columns_of(part) names the columns to read from a part, numeric
    the columns a CSV's text is parsed as numbers in."""
    def payloads():
        for i, part in enumerate(parts):
            yield from _payloads(part, plan.ranges.get(i, ()), columns_of, chunk_rows, numeric)

    return _numbered(payloads())


def stream(parts: list[Part], chunk_rows: int, columns_of, plan: Scan,
           numeric: frozenset = frozenset()) -> Iterator[tuple[int, int, object]]:
    """The same tasks as tasks(), each handed out as soon as the pass over the bytes has found it; plan (new,
    empty) is filled as the pass goes and complete once the last task is out."""
    def payloads():
        header = {}
        for i, chunk in _pass(parts, chunk_rows, plan):
            part = parts[i]
            if chunk is None:  # a Parquet part: its chunks are known from its footer
                yield from parquet_slices(part, columns_of(part), chunk_rows)
                continue
            if i not in header:
                header[i] = _csv_fields(part, columns_of, numeric)
            yield CsvRange(str(part.path), *chunk, *header[i])

    return _numbered(payloads())


def chunks(parts: list[Part], columns_of, chunk_rows: int) -> Iterator[tuple[int, int, object]]:
    """(chunk index, number of its first row in the whole input, pyarrow Table) for every chunk, in order."""
    plan = scan(parts, chunk_rows)
    for index, first, payload in tasks(parts, plan, columns_of, chunk_rows):
        yield index, first, read(payload)
