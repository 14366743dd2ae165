"""Tables as spreadsheets and other tools write them, turned into the one form every pipeline reads.

The pipelines, the data contracts and the scoring code read a data set with `pandas.read_csv(path)`: commas
between fields, a point before decimals. Excel and LibreOffice in many locales save `;` between fields and a
comma before decimals (as R's `write.csv2` does), other tools write tab-separated files (`write.table(sep="\\t")`,
`.tsv`), `|`-separated exports, or columns aligned with blanks (scikit-learn's linnerud files). `mlops init` and
`mlops data add` read those too and keep the data set as a standard CSV file: the same fields in the same order,
each value's text unchanged except a decimal comma that becomes a point.

The separator is the first of `,` `;` tab `|` that splits every line of the file's start into the same number
(two or more) of fields, as csv.Sniffer guesses but without its guesses on one-column files; failing those,
runs of blanks. The decimal mark is a comma when the separator is not one, some value of the start reads as a
number with a decimal comma (`17,99`) and none as a number with a decimal point.
"""
from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

SEPARATORS = (",", ";", "\t", "|")
BLANKS = " "  # the separator of a table aligned with runs of blanks (spaces or tabs)
SAMPLE_LINES = 200
DECIMAL_COMMA = re.compile(r"^[+-]?(\d+,\d*|,\d+)([eE][+-]?\d+)?$")
DECIMAL_POINT = re.compile(r"^[+-]?(\d+\.\d*|\.\d+)([eE][+-]?\d+)?$")
NAMES = {",": "comma", ";": "semicolon", "\t": "tab", "|": "'|'", BLANKS: "blank"}


@dataclass(frozen=True)
class Dialect:
    """How a table file separates fields and writes decimals."""

    separator: str = ","
    decimal: str = "."

    @property
    def standard(self) -> bool:
        """Whether pandas.read_csv(path) reads the file as it is."""
        return self.separator == "," and self.decimal == "."

    def describe(self) -> str:
        """'semicolon-separated with decimal commas', for a summary line."""
        text = f"{NAMES[self.separator]}-separated"
        return text + (" with decimal commas" if self.decimal == "," else "")


def _split(lines: list[str], separator: str) -> list[list[str]]:
    if separator == BLANKS:
        return [line.split() for line in lines]
    try:
        return list(csv.reader(lines, delimiter=separator))
    except csv.Error:
        return []


def sniff(text: str) -> Dialect:
    """The dialect of a table file from its first characters (a line cut at the end of text is left out);
    the standard one when no separator splits every line the same way (pandas then says what is wrong)."""
    lines = [line for line in text.splitlines()[:SAMPLE_LINES + 1] if line.strip()]
    if len(lines) > 1 and not text.endswith(("\n", "\r")):
        lines.pop()  # the sample may end inside a line
    for separator in SEPARATORS + (BLANKS,):
        rows = _split(lines, separator)
        widths = {len(row) for row in rows}
        if rows and len(widths) == 1 and widths.pop() >= 2:
            return Dialect(separator, _decimal(rows[1:], separator))
    return Dialect()


def _decimal(rows: list[list[str]], separator: str) -> str:
    if separator == ",":
        return "."
    values = [value.strip() for row in rows for value in row]
    commas = any(DECIMAL_COMMA.match(value) for value in values)
    return "," if commas and not any(DECIMAL_POINT.match(value) for value in values) else "."


def standard_rows(handle: io.TextIOBase, dialect: Dialect) -> Iterator[list[str]]:
    """The rows of an open table file, with decimal commas made points (header untouched)."""
    if dialect.separator == BLANKS:
        rows: Iterator[list[str]] = (line.split() for line in handle if line.strip())
    else:
        rows = csv.reader(handle, delimiter=dialect.separator)
    for number, row in enumerate(rows):
        if number and dialect.decimal == ",":
            row = [value.replace(",", ".") if DECIMAL_COMMA.match(value.strip()) else value for value in row]
        yield row


def write_standard(source: Path, dialect: Dialect, out: io.TextIOBase) -> None:
    """Write the table at source, read in dialect, to out as a standard CSV file."""
    writer = csv.writer(out, lineterminator="\n")
    with open(source, encoding="utf-8-sig", newline="") as handle:
        writer.writerows(standard_rows(handle, dialect))


def standard_text(source: Path, dialect: Dialect) -> str:
    """The table at source, read in dialect, as the text of a standard CSV file."""
    out = io.StringIO()
    write_standard(source, dialect, out)
    return out.getvalue()


def of(path: Path) -> Dialect:
    """The dialect of the table file at path (from its first 64 KiB)."""
    with open(path, encoding="utf-8-sig", errors="replace", newline="") as handle:
        return sniff(handle.read(64 * 1024))


def standard_file(source: Path, folder: Path) -> tuple[Dialect, Path]:
    """(dialect, a standard CSV file with source's table): source itself when it is one already, else a copy
    written into folder."""
    dialect = of(source)
    if dialect.standard:
        return dialect, Path(source)
    target = Path(folder) / (Path(source).stem + ".csv")
    with open(target, "w", encoding="utf-8", newline="") as out:
        write_standard(source, dialect, out)
    return dialect, target
