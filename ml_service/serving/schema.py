"""The model's input schema, read from the MLflow signature in <model_dir>/MLmodel, and request rows checked
against it.

A column-based signature gives names, types and which columns may be null; a model without one (or with a
tensor signature) takes untyped rows of numbers. No MLflow import: MLmodel is YAML, its signature JSON.
Every check raises InputError (a 422 for the client) naming the row and the column.
"""
from __future__ import annotations

import json
import math
import sys
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import yaml

NUMERIC = {"double", "float", "long", "integer"}
JSON_TYPES = {"double": "number", "float": "number", "long": "integer", "integer": "integer",
              "boolean": "boolean", "string": "string", "datetime": "string", "binary": "string"}
INTEGER_RANGE = {"long": (-2 ** 63, 2 ** 63 - 1), "integer": (-2 ** 31, 2 ** 31 - 1)}
FLOAT32_MAX = 3.4028234663852886e38
FRAME_DTYPES = {"double": "float64", "float": "float32", "long": "int64", "integer": "int32"}
EXAMPLE_ROWS = 5


class SchemaError(Exception):
    """The model's MLmodel cannot be used by the scoring service (raised at start)."""


class InputError(ValueError):
    """The request's data does not fit the model; the message goes to the client with a 422."""


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _names(names: list[str], limit: int = 20) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f", ... ({len(names)} in all)" if len(names) > limit else "")


@dataclass(frozen=True)
class Column:
    """One input column: name, MLflow type, and whether null is refused."""

    name: str
    type: str = "double"
    required: bool = True

    @property
    def json_type(self) -> str:
        """The JSON Schema type of a value of this column."""
        return JSON_TYPES[self.type]

    def check(self, value: object) -> str | None:
        """Why value does not fit this column, or None when it does."""
        if value is None:
            return "is null but required" if self.required else None
        kind = type(value)
        if self.type in NUMERIC:
            if kind is not float and kind is not int:
                return f"is not a number: {_shown(value)}"
            if kind is float and not math.isfinite(value):
                return f"is not finite: {_shown(value)}"
            if self.type in INTEGER_RANGE:
                if kind is float and not value.is_integer():
                    return f"is not a whole number: {_shown(value)}"
                low, high = INTEGER_RANGE[self.type]
                if not low <= value <= high:
                    return f"is out of range for {self.type}: {_shown(value)}"
            elif abs(value) > (FLOAT32_MAX if self.type == "float" else sys.float_info.max):
                return f"is out of range for {self.type}: {_shown(value)}"
            return None
        if self.type == "boolean":
            return None if kind is bool else f"is not true or false: {_shown(value)}"
        if kind is not str:
            return f"is not a string: {_shown(value)}"
        if self.type == "datetime":
            try:
                datetime.fromisoformat(value)
            except ValueError:
                return f"is not an ISO 8601 date/time: {_shown(value)}"
        return None


@dataclass(frozen=True)
class Schema:
    """The columns a model takes (empty: untyped numeric rows, of width when known)."""

    columns: tuple[Column, ...] = ()
    width: int | None = None
    _index: dict = field(default_factory=dict, repr=False, compare=False)
    _fast: bool = field(default=True, repr=False, compare=False)
    _ranged: tuple = field(default=(), repr=False, compare=False)

    def __post_init__(self):
        if self.columns:
            object.__setattr__(self, "width", len(self.columns))
            self._index.update((c.name, j) for j, c in enumerate(self.columns))
        object.__setattr__(self, "_fast", all(c.type in NUMERIC for c in self.columns))
        ranges = {**INTEGER_RANGE, "float": (-FLOAT32_MAX, FLOAT32_MAX)}
        object.__setattr__(self, "_ranged", tuple(
            (j, *ranges[c.type], c.type != "float") for j, c in enumerate(self.columns) if c.type in ranges))

    @property
    def typed(self) -> bool:
        """True when the model's signature names its columns."""
        return bool(self.columns)

    @property
    def numeric(self) -> bool:
        """True when every value is a number (untyped models too)."""
        return self._fast

    @property
    def names(self) -> list[str]:
        """The column names in order (empty when untyped)."""
        return [c.name for c in self.columns]

    def column(self, j: int) -> Column:
        """Column j (an unnamed required double when untyped)."""
        return self.columns[j] if self.columns else Column(str(j))

    def label(self, j: int) -> str:
        """How errors name column j."""
        return repr(self.columns[j].name) if self.columns else str(j)

    def check(self, data: object, where: str = "data") -> list:
        """Rows of plain values in schema order (records become rows, in place); InputError when they do not fit."""
        if not isinstance(data, list):
            raise InputError(f"'{where}' must be a list of rows, got {type(data).__name__}")
        if not data:
            raise InputError(f"'{where}' is empty: send at least one row")
        width, fast, ranged = self.width, self._fast, self._ranged
        for i, row in enumerate(data):
            if type(row) is not list:
                if type(row) is not dict:
                    what = "a list of values or an object of columns" if self.columns else "a list of numbers"
                    raise InputError(f"{where}[{i}] must be {what}, got {type(row).__name__}")
                row = data[i] = self._from_record(row, i, where)
            if not row:
                raise InputError(f"{where}[{i}] has no values")
            if len(row) != width:
                if width is None and i == 0:
                    width = len(row)
                else:
                    self._wrong_width(row, i, where, width)
            if fast:  # all-numeric: one cheap pass; find the culprit only when something is off
                for value in row:
                    if type(value) is not float and type(value) is not int:
                        break
                else:
                    try:
                        ok = math.isfinite(sum(row))
                    except OverflowError:
                        ok = False
                    for j, low, high, whole in ranged:  # long, integer and float columns
                        value = row[j]
                        if not low <= value <= high or (whole and type(value) is not int and not value.is_integer()):
                            ok = False
                    if ok:
                        continue
            self._check_row(row, i, where)
        return data

    def _wrong_width(self, row: list, i: int, where: str, width: int | None) -> None:
        if self.columns:
            raise InputError(f"{where}[{i}] has {len(row)} values; the model expects {width} "
                             f"({_names(self.names)})")
        if self.width is not None:
            raise InputError(f"{where}[{i}] has {len(row)} values; the model expects {width}")
        raise InputError(f"{where}[{i}] has {len(row)} values; {where}[0] has {width}")

    def _check_row(self, row: list, i: int, where: str) -> None:
        for j, value in enumerate(row):
            problem = self.column(j).check(value)
            if problem:
                raise InputError(f"{where}[{i}] column {self.label(j)} {problem}")

    def _from_record(self, record: dict, i: int, where: str) -> list:
        if not self.columns:
            raise InputError(f"{where}[{i}] is an object, but this model has no column names (no signature): "
                             "send each row as a list of numbers")
        unknown = [repr(k) for k in record if k not in self._index]
        if unknown:
            raise InputError(f"{where}[{i}] has unknown column(s) {_names(unknown)}; "
                             f"the model takes {_names(self.names)}")
        missing = [c.name for c in self.columns if c.required and c.name not in record]
        if missing:
            raise InputError(f"{where}[{i}] is missing column(s) {_names([repr(m) for m in missing])}")
        return [record.get(c.name) for c in self.columns]

    def frame(self, rows: list):
        """A pandas DataFrame of checked rows: the schema's columns in order, with their dtypes."""
        import pandas as pd

        if not self.columns:
            return pd.DataFrame(rows, dtype="float64")
        try:
            return pd.DataFrame({c.name: _series(pd, c, [row[j] for row in rows])
                                 for j, c in enumerate(self.columns)})
        except (ValueError, TypeError, OverflowError) as exc:
            raise InputError(f"the rows do not make a table of the model's columns: {exc}") from None


def _series(pd, column: Column, values: list):
    has_null = None in values
    if column.type in ("double", "float"):
        return pd.Series(values, dtype=FRAME_DTYPES[column.type])
    if column.type in INTEGER_RANGE:
        return pd.Series(values, dtype="float64" if has_null else FRAME_DTYPES[column.type])
    if column.type == "boolean":
        return pd.Series(values, dtype=object if has_null else bool)
    if column.type == "datetime":
        return pd.to_datetime(pd.Series(values, dtype=object), format="ISO8601")
    return pd.Series(values, dtype=object)


def read_mlmodel(model_dir: str | Path) -> dict:
    """<model_dir>/MLmodel as a mapping ({} when there is none)."""
    path = Path(model_dir) / "MLmodel"
    if not str(model_dir) or not path.is_file():
        return {}
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise SchemaError(f"{path}: cannot read it: {exc}") from None
    if not isinstance(data, dict):
        raise SchemaError(f"{path}: expected a YAML mapping")
    return data


def _signature_part(mlmodel: dict, part: str) -> list | None:
    text = (mlmodel.get("signature") or {}).get(part)
    if not text:
        return None
    try:
        specs = json.loads(text) if isinstance(text, str) else text
    except ValueError as exc:
        raise SchemaError(f"MLmodel signature.{part} is not JSON: {exc}") from None
    if not isinstance(specs, list) or not all(isinstance(s, dict) for s in specs):
        raise SchemaError(f"MLmodel signature.{part} must be a list of column or tensor specs")
    return specs


def load_schema(mlmodel: dict) -> Schema:
    """The input schema of the signature in mlmodel; untyped rows without one or with a tensor signature."""
    specs = _signature_part(mlmodel, "inputs")
    if not specs:
        return Schema()
    if any(s.get("type") == "tensor" for s in specs):
        shape = specs[0].get("tensor-spec", {}).get("shape") if len(specs) == 1 else None
        width = shape[1] if isinstance(shape, list) and len(shape) == 2 and isinstance(shape[1], int) else -1
        return Schema(width=width if width > 0 else None)
    columns = []
    for j, spec in enumerate(specs):
        name, kind = spec.get("name"), spec.get("type")
        if not isinstance(name, str) or not name:
            raise SchemaError(f"MLmodel signature.inputs[{j}] has no column name")
        if kind not in JSON_TYPES:
            raise SchemaError(f"MLmodel signature: column {name!r} has type {kind!r}; the scoring service takes "
                              f"{', '.join(JSON_TYPES)}")
        columns.append(Column(name, kind, bool(spec.get("required", True))))
    return Schema(tuple(columns))


def output_datatype(mlmodel: dict) -> str:
    """The Open Inference Protocol datatype of the model's predictions, from the signature (FP64 by default)."""
    specs = _signature_part(mlmodel, "outputs") or []
    if len(specs) != 1:
        return "FP64"
    spec = specs[0]
    kind = spec.get("tensor-spec", {}).get("dtype") if spec.get("type") == "tensor" else spec.get("type")
    if kind in ("string", "str", "object", "binary"):
        return "BYTES"
    return "BOOL" if kind in ("boolean", "bool") else "FP64"


def platform(mlmodel: dict) -> str:
    """The MLflow flavor the model was saved in (e.g. sklearn); python_function when it is the only one."""
    flavors = [f for f in (mlmodel.get("flavors") or {}) if isinstance(f, str)]
    native = [f for f in flavors if f != "python_function"]
    return native[0] if native else (flavors[0] if flavors else "unknown")


def _example_rows(raw: object, schema: Schema) -> list | None:
    if isinstance(raw, dict):
        raw = raw.get("dataframe_split") or raw.get("dataframe_records") or raw.get("inputs") or raw
    if isinstance(raw, dict) and isinstance(raw.get("columns"), list) and isinstance(raw.get("data"), list):
        columns = raw["columns"]
        raw = [dict(zip(columns, row)) if schema.typed and isinstance(row, list) else row for row in raw["data"]]
    if not isinstance(raw, list) or not raw:
        return None
    rows = []
    for row in raw[:EXAMPLE_ROWS]:
        if isinstance(row, dict):
            row = [row.get(name) for name in schema.names] if schema.typed else None
        if not isinstance(row, list):
            return None
        rows.append([None if isinstance(v, float) and math.isnan(v) else v for v in row])
    return rows


def _default(column: Column) -> object:
    return {"double": 0.0, "float": 0.0, "long": 0, "integer": 0, "boolean": False,
            "datetime": "2024-01-01T00:00:00"}.get(column.type, "")


def input_example(model_dir: str | Path, mlmodel: dict, schema: Schema) -> list | None:
    """Example rows: MLflow's saved input example when it fits the schema, else rows built from the schema."""
    info = mlmodel.get("saved_input_example_info") or {}
    path = Path(model_dir) / str(info.get("artifact_path") or "input_example.json")
    rows = None
    if str(model_dir) and path.is_file():
        try:
            rows = _example_rows(json.loads(path.read_text()), schema)
            if rows is not None:
                schema.check(rows)
        except (OSError, ValueError, RecursionError):
            rows = None
    if rows is None and schema.width:
        rows = [[_default(schema.column(j)) for j in range(schema.width)]]
    return rows


def resolve_model_dir(source: str) -> str:
    """A local folder for source: a folder as is, a models:/ or runs:/ URI downloaded once (needs MLflow)."""
    if source.startswith(("models:/", "runs:/")):
        import mlflow.artifacts

        return mlflow.artifacts.download_artifacts(source)
    return source
