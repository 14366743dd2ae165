"""Read the user's CSV file for `mlops init`, refusing what is not a usable table with one clear line."""
from __future__ import annotations

import csv
import io
import re
from pathlib import Path

from ml_service.init import InitError

MIN_ROWS = 20
SNIFF_BYTES = 64 * 1024
NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


def _head(path: Path) -> str:
    """The first bytes of path as text; InitError when it is missing, a folder, empty or binary."""
    if not path.exists():
        raise InitError(f"{path}: no such file")
    if path.is_dir():
        raise InitError(f"{path}: is a folder, not a CSV file")
    try:
        with open(path, "rb") as handle:
            raw = handle.read(SNIFF_BYTES)
    except OSError as exc:
        raise InitError(f"{path}: cannot be read: {exc.strerror or exc}") from None
    if not raw.strip():
        raise InitError(f"{path}: is empty")
    if b"\0" in raw:
        raise InitError(f"{path}: is a binary file, not a CSV file")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        if exc.start < len(raw) - 4:  # not just a character cut at the end of the sample
            raise InitError(f"{path}: is not UTF-8 text (byte {exc.start}), not a CSV file") from None
        return raw[:exc.start].decode("utf-8-sig")


def check_header(path: Path, text: str) -> list[str]:
    """The header's column names; InitError when there is no header or a name is empty or repeated."""
    try:
        header = next(csv.reader(io.StringIO(text)))
    except (csv.Error, StopIteration) as exc:
        raise InitError(f"{path}: not a readable CSV file: {exc}") from None
    names = list(header)
    if len(names) < 2:
        raise InitError(f"{path}: has {len(names)} column ({', '.join(map(repr, names))}); a CSV file with "
                        "feature columns and a target column is needed (fields separated by commas, semicolons, "
                        "tabs, '|' or aligned with blanks)")
    if all(NUMBER.match(name) for name in names):
        raise InitError(f"{path}: has no header line (its first line holds numbers only); "
                        "add a first line with the column names")
    empty = [str(i + 1) for i, name in enumerate(names) if not name.strip()]
    if empty and any(NUMBER.match(name.strip()) for name in names):
        raise InitError(f"{path}: has no header line (its first line looks like data: numbers and empty fields); "
                        "add a first line with the column names")
    if empty and (empty != ["1"] or names[0] != ""):  # only a row index (pandas to_csv, R write.csv) may be
        # unnamed, and only when it comes first
        raise InitError(f"{path}: column(s) {', '.join(empty)} have no name in the header line; name them "
                        "(only a first column that numbers the rows may be unnamed)")
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise InitError(f"{path}: column name(s) {', '.join(map(repr, repeated))} appear more than once")
    return names


def read_table(path: Path):
    """The CSV file at path as a pandas DataFrame, with at least MIN_ROWS rows and a proper header; its
    attrs["unnamed_first"] says whether the first column had no name (pandas calls it 'Unnamed: 0'), its
    attrs["dialect"] how the file separates fields (a file that is not a standard CSV is read as the standard
    CSV that init writes into data/: ml_service/data/dialect.py)."""
    import pandas as pd

    from ml_service.data import dialect as dialects

    path = Path(path)
    head = _head(path)
    dialect = dialects.sniff(head)
    text = None if dialect.standard else dialects.standard_text(path, dialect)
    names = check_header(path, head if text is None else text[:SNIFF_BYTES])
    try:
        frame = pd.read_csv(path if text is None else io.StringIO(text))  # as the pipeline's steps read data/
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InitError(f"{path}: not a readable CSV file: {first}") from None
    if list(frame.columns) != (["Unnamed: 0"] + names[1:] if names[0] == "" else names):
        raise InitError(f"{path}: the header line does not match the data (read {len(frame.columns)} columns, "
                        f"the header names {len(names)})")
    if len(frame) == 0:
        raise InitError(f"{path}: has a header but no data rows")
    frame.attrs["unnamed_first"] = names[0] == ""
    frame.attrs["dialect"] = dialect
    if len(frame) < MIN_ROWS:
        raise InitError(f"{path}: has {len(frame)} data rows; at least {MIN_ROWS} are needed to train and test "
                        "a model")
    return frame
