"""The input of a batch job: a CSV or Parquet file, or a folder of such parts, read in chunks.

Chunks are deterministic (chunk_rows rows, never spanning two parts), so a resumed job cuts the input
exactly as the first attempt did. CSV values are read as text, so that one bad value rejects one row
(see convert.py) instead of failing the whole file; Parquet keeps its types.
"""
from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from ml_service.batch import BatchError

FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}
BLOCK = 1 << 20


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


def digest(parts: list[Part]) -> tuple[str, int]:
    """(sha256 over every part's name and bytes, an estimate of the rows: Parquet's count, CSV's lines)."""
    sha, rows = hashlib.sha256(), 0
    for part in parts:
        sha.update(part.path.name.encode() + b"\0")
        lines = 0
        with open(part.path, "rb") as handle:
            while block := handle.read(BLOCK):
                sha.update(block)
                lines += block.count(b"\n")
        if part.format == "parquet":
            import pyarrow.parquet as pq

            rows += pq.ParquetFile(part.path).metadata.num_rows
        else:
            rows += max(lines - 1, 0)
    return sha.hexdigest(), rows


def _batches(part: Part, columns: list[str], chunk_rows: int):
    if part.format == "parquet":
        import pyarrow.parquet as pq

        yield from pq.ParquetFile(part.path).iter_batches(batch_size=min(chunk_rows, 1 << 16), columns=columns)
        return
    import pyarrow as pa
    from pyarrow import csv as pcsv

    header = part.columns()
    options = pcsv.ConvertOptions(column_types={c: pa.string() for c in header}, include_columns=columns,
                                  strings_can_be_null=True, quoted_strings_can_be_null=True)
    try:
        reader = pcsv.open_csv(part.path, read_options=pcsv.ReadOptions(block_size=4 << 20), convert_options=options)
        yield from reader
    except pa.ArrowInvalid as exc:
        raise BatchError(f"{part.path}: not a readable CSV: {exc}") from None


def chunks(parts: list[Part], columns_of, chunk_rows: int) -> Iterator[tuple[int, int, object]]:
    """(chunk index, number of its first row in the whole input, pyarrow Table) for every chunk, in order.

    columns_of(part) names the columns to read from a part."""
    import pyarrow as pa

    index = first = 0
    for part in parts:
        pending, count = [], 0
        for batch in _batches(part, columns_of(part), chunk_rows):
            pending.append(batch)
            count += batch.num_rows
            while count >= chunk_rows:
                table = pa.Table.from_batches(pending)
                yield index, first, table.slice(0, chunk_rows)
                rest = table.slice(chunk_rows)
                pending, count = rest.to_batches(), rest.num_rows
                index, first = index + 1, first + chunk_rows
        if count:
            yield index, first, pa.Table.from_batches(pending)
            index, first = index + 1, first + count
