"""The rows of each Spark split of a local CSV, counted by the driver without a Spark job: the same as a plain
reading of Hadoop's line-reader rule (a line belongs to the split whose range (start, end] holds its first byte;
blank lines and the header are not rows), whatever the line endings, blank lines or a last line without a break.
(tests/batch/test_spark.py checks the counts against Spark itself: each task compares its rows with them.)"""
from __future__ import annotations

import random

import pytest

from ml_service.batch.spark_job import csv_split_counts


def by_the_rule(data: bytes, split: int) -> dict[int, int]:
    counts, start, header = {}, 0, True
    for line in data.split(b"\n"):
        if line.strip(b"\x00\t\n\v\f\r ") and start < len(data):
            if header:
                header = False
            else:
                block = 0 if start == 0 else (start - 1) // split * split
                counts[block] = counts.get(block, 0) + 1
        start += len(line) + 1
    return counts


@pytest.mark.parametrize("seed", range(6))
def test_split_counts_follow_the_line_readers_rule(tmp_path, seed):
    generator = random.Random(seed)
    lines = ["a,b"]
    for _ in range(3000):
        kind = generator.random()
        lines.append("" if kind < 0.03 else "  " if kind < 0.05 else f"{generator.random()},{generator.random()}")
    ending = "\r\n" if seed % 2 else "\n"
    text = ending.join(lines) + ("" if seed % 3 == 0 else ending)
    path = tmp_path / "x.csv"
    path.write_bytes(text.encode())
    data = path.read_bytes()
    for split in (97, 4096, 10_000, len(data) + 1):
        assert csv_split_counts(path, len(data), split) == by_the_rule(data, split), split


def test_a_line_starting_exactly_at_a_split_boundary_belongs_to_the_split_before():
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "x.csv"
        path.write_bytes(b"h\n1234\n5678\n9\n")  # lines start at 0, 2, 7, 12
        assert csv_split_counts(path, 14, 7) == {0: 2, 7: 1}  # the line at 7 is read by (0, 7]
