"""Profile a table for `mlops init`: each column's kind, nulls, range or categories; the task and its target.

A column is numeric (numbers), boolean (true/false) or categorical (any other text). The task is
guessed from the target when not given: text or booleans, or whole numbers with at most
MAX_CLASSES distinct values, make a classification; other numbers a regression.
"""
from __future__ import annotations

from dataclasses import dataclass

from ml_service.init import InitError
from ml_service.init.reader import NUMBER

TASKS = ("regression", "classification")
MAX_CLASSES = 20       # whole-number targets with at most this many values are guessed to be classes
MIN_PER_CLASS = 5      # rows per class, so that a stratified 80/20 split puts each class in the test split
MAX_CATEGORIES = 50    # a text column with more distinct values is not pinned to a value set


@dataclass(frozen=True)
class ColumnProfile:
    """What the data says about one column."""

    name: str
    kind: str                 # numeric | boolean | categorical
    nulls: int
    distinct: int
    minimum: float | None = None
    maximum: float | None = None
    integer: bool = False
    categories: tuple = ()    # sorted distinct values (booleans, or text up to MAX_CATEGORIES)

    @property
    def categorical(self) -> bool:
        """True for text and boolean columns (one-hot encoded by the model)."""
        return self.kind != "numeric"


@dataclass(frozen=True)
class Profile:
    """The profile of a whole table, with its target and task."""

    rows: int
    columns: tuple[ColumnProfile, ...]
    target: str
    task: str
    task_reason: str
    classes: tuple = ()
    excluded: tuple = ()      # columns.Excluded: a row index and identifiers, in the file but not features
    warnings: tuple = ()      # what the user should look at (a feature that follows the row order)

    @property
    def excluded_names(self) -> set[str]:
        """The names of the columns that are not features."""
        return {e.name for e in self.excluded}

    @property
    def features(self) -> list[ColumnProfile]:
        """Every column but the target and the excluded ones, in the data's order."""
        return [c for c in self.columns if c.name != self.target and c.name not in self.excluded_names]

    @property
    def metric(self) -> str:
        """The promotion metric: r2 (regression), roc_auc (two classes) or f1_macro (more)."""
        if self.task == "regression":
            return "r2"
        return "roc_auc" if len(self.classes) == 2 else "f1_macro"

    def column(self, name: str) -> ColumnProfile:
        """The profile of the named column."""
        return next(c for c in self.columns if c.name == name)


def _plain(value):
    """A numpy scalar as a plain Python value (JSON-friendly)."""
    return value.item() if hasattr(value, "item") else value


def profile_column(name: str, series, excluded: bool = False) -> ColumnProfile:
    """Kind, nulls, distinct values and range (numbers) or categories (text, booleans) of one column (an
    excluded one may be empty)."""
    import pandas as pd

    values = series.dropna()
    nulls, distinct = int(series.isna().sum()), int(values.nunique())
    if excluded and not len(values):
        return ColumnProfile(name, "categorical", nulls, distinct)
    if pd.api.types.is_bool_dtype(series) or (len(values) and all(isinstance(v, bool) for v in values)):
        return ColumnProfile(name, "boolean", nulls, distinct, categories=(False, True))
    if pd.api.types.is_numeric_dtype(series):
        if not len(values):
            raise InitError(f"column {name!r} has no values at all; remove it from the file")
        integer = bool(pd.api.types.is_integer_dtype(series) or (values % 1 == 0).all())
        return ColumnProfile(name, "numeric", nulls, distinct, float(values.min()), float(values.max()), integer)
    texts = sorted({str(v) for v in values})
    if not texts:
        raise InitError(f"column {name!r} has no values at all; remove it from the file")
    return ColumnProfile(name, "categorical", nulls, distinct,
                         categories=tuple(texts) if len(texts) <= MAX_CATEGORIES else ())


def guess_task(column: ColumnProfile) -> tuple[str, str]:
    """(task, why) for a target column."""
    if column.categorical:
        return "classification", f"the target {column.name!r} holds {column.kind} values"
    if column.integer and column.distinct <= MAX_CLASSES:
        return "classification", (f"the target {column.name!r} holds {column.distinct} distinct whole numbers "
                                  f"(at most {MAX_CLASSES})")
    return "regression", f"the target {column.name!r} holds numbers ({column.distinct} distinct values)"


def _classes(series, name: str) -> tuple:
    counts = series.value_counts()
    classes = tuple(sorted(_plain(v) for v in counts.index))
    if len(classes) < 2:
        raise InitError(f"target {name!r} has a single class ({classes[0]!r}): a classifier needs at least two")
    rare = [f"{_plain(label)!r} ({int(n)})" for label, n in counts.items() if n < MIN_PER_CLASS]
    if rare:
        raise InitError(f"target {name!r} has class(es) with fewer than {MIN_PER_CLASS} rows: {', '.join(rare[:10])}; "
                        "remove them or collect more rows")
    return classes


def profile_frame(frame, target: str, task: str | None = None, keep=(), drop=()) -> Profile:
    """Profile every column of frame; check the target and the task (guessed when task is None); set aside a
    row index and identifier columns (keep and drop: column names that override that)."""
    from ml_service.init.columns import excluded_columns, sort_warnings

    names = [str(c) for c in frame.columns]
    if target not in names:
        hint = " (is there no header line? the first line looks like data)" if any(
            NUMBER.match(name) for name in names) else ""
        raise InitError(f"no target column {target!r}; the columns are: {', '.join(map(repr, names))}{hint}")
    if len(names) < 2:
        raise InitError(f"the data has no feature columns besides the target {target!r}")
    if task is not None and task not in TASKS:
        raise InitError(f"task {task!r} is not one of {', '.join(TASKS)}")
    missing = int(frame[target].isna().sum())
    if missing:
        raise InitError(f"target {target!r} is missing in {missing} row(s); remove those rows or fill them in")
    excluded = excluded_columns(frame, target, bool(frame.attrs.get("unnamed_first")), list(keep), list(drop))
    left_out = {e.name for e in excluded}
    columns = tuple(profile_column(name, frame[name], name in left_out) for name in names)
    target_column = next(c for c in columns if c.name == target)
    guessed, reason = guess_task(target_column)
    if task is None:
        task = guessed
    else:
        reason = f"--task {task}"
    if task == "regression" and target_column.categorical:
        raise InitError(f"target {target!r} holds {target_column.kind} values, not numbers: a regression needs "
                        "numbers (use --task classification)")
    classes = _classes(frame[target], target) if task == "classification" else ()
    features = [name for name in names if name != target and name not in left_out]
    return Profile(len(frame), columns, target, task, reason, classes, tuple(excluded),
                   tuple(sort_warnings(frame, target, features)))
