"""The registered model version a batch job scores with: resolved from NAME@ALIAS or NAME:VERSION (in the
job's MLflow process, recorder.py), its input schema read from the signature of its downloaded files, and the
score module the scoring service would use."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ml_service.batch import BatchError

DEFAULT_SCORE_MODULE = "ml_service.serving.pyfunc_score"


@dataclass(frozen=True)
class BatchModel:
    """A model version ready to be loaded by the workers."""

    name: str
    version: str
    directory: Path
    score_module: str
    schema: object  # ml_service.serving.schema.Schema


def check_ref(ref: str):
    """The ModelRef of --model; a BatchError unless it is NAME@ALIAS or NAME:VERSION (models:/ forms too)."""
    from ml_service.workspace.refs import ModelRefError, parse_model_ref

    try:
        parsed = parse_model_ref(ref)
    except ModelRefError as exc:
        raise BatchError(f"--model {ref!r}: {exc.reason}") from None
    if parsed.version is None and parsed.alias is None:
        raise BatchError(f"--model {parsed.name!r}: give NAME@ALIAS or NAME:VERSION (e.g. {parsed.name}@champion)")
    return parsed


def resolve(client, ref: str):
    """The ModelVersion of ref (NAME@ALIAS or NAME:VERSION, models:/ prefix allowed)."""
    from ml_service.workspace.registry import RegistryError, resolve_version

    parsed = check_ref(ref)
    try:
        return resolve_version(client, parsed)
    except RegistryError as exc:
        raise BatchError(str(exc)) from None


def score_module_for(settings, name: str) -> str:
    """The project's score module when name is a project's registered model, else the pyfunc one."""
    for project in settings.models:
        if project.name == name and project.score_module:
            return project.score_module
    return DEFAULT_SCORE_MODULE


def describe(settings, name: str, version: str, directory: Path) -> BatchModel:
    """The model version downloaded in directory, with its input schema and score module."""
    from ml_service.serving.schema import SchemaError, load_schema, read_mlmodel

    try:
        schema = load_schema(read_mlmodel(directory))
    except SchemaError as exc:
        raise BatchError(str(exc)) from None
    return BatchModel(name, version, directory, score_module_for(settings, name), schema)


def columns_to_read(schema, available: list[str], where: str) -> list[str]:
    """The input columns the model takes, in the part's order; a BatchError when a required one is missing."""
    if not schema.typed:
        if schema.width and len(available) != schema.width:
            raise BatchError(f"{where}: {len(available)} columns; the model (no column names) takes {schema.width}")
        return available
    missing = [c.name for c in schema.columns if c.required and c.name not in available]
    if missing:
        raise BatchError(f"{where}: missing column(s) {', '.join(map(repr, missing))} that the model requires")
    return [name for name in available if name in schema.names]


def numeric_columns(schema, columns: dict) -> frozenset:
    """The columns (of every part's columns to read) that the model takes as numbers (untyped: all)."""
    from ml_service.serving.schema import NUMERIC

    if not schema.typed:
        return frozenset(name for names in columns.values() for name in names)
    return frozenset(c.name for c in schema.columns if c.type in NUMERIC)
