"""Render a new model project from the templates in templates/project/ and the data's profile.

templates/project/ mirrors the project's folder: `X.tmpl` becomes X, `X.<task>.tmpl` becomes X for that
task only. Placeholders are `{{name}}`; column names enter the code as string literals in lists, never
as identifiers, so any column name works. The data contract and the smoke payload are rendered here too.
"""
from __future__ import annotations

import json
import math
import re
from pathlib import Path

from ml_service.init.names import ProjectNames
from ml_service.init.profile import Profile
from ml_service.init.suite import build_suite

TEMPLATES = Path(__file__).resolve().parent / "templates" / "project"
PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")
LINE = 100
MODELS = {  # task -> (estimator, pipeline parameter, algorithm tag)
    "regression": ("Ridge", "alpha", "ridge"),
    "classification": ("LogisticRegression", "C", "logistic_regression"),
}


def literal(value: str) -> str:
    """A Python (and JSON) string literal for value."""
    return json.dumps(value, ensure_ascii=False)


def list_literal(values: list[str], prefix: int) -> str:
    """A Python list of string literals, on one line when it fits after prefix characters, else wrapped."""
    items = [literal(v) for v in values]
    flat = "[" + ", ".join(items) + "]"
    if prefix + len(flat) <= LINE:
        return flat
    lines, current = [], ""
    for item in items:
        if current and len(current) + len(item) + 6 > LINE:
            lines.append(current)
            current = ""
        current = f"{current} {item}," if current else f"{item},"
    lines.append(current)
    return "[\n" + "".join(f"    {line}{'  # noqa: E501' if len(line) > 114 else ''}\n" for line in lines) + "]"


def render(text: str, values: dict[str, str], where: str = "template") -> str:
    """text with every {{name}} replaced; KeyError naming an unknown placeholder."""
    def substitute(match: re.Match) -> str:
        if match.group(1) not in values:
            raise KeyError(f"{where}: unknown placeholder {{{{{match.group(1)}}}}}")
        return values[match.group(1)]
    return PLACEHOLDER.sub(substitute, text)


def template_values(profile: Profile, names: ProjectNames) -> dict[str, str]:
    """The placeholder values of a project."""
    estimator, hyper, algorithm = MODELS[profile.task]
    features = [c.name for c in profile.features]
    categorical = [c.name for c in profile.features if c.categorical]
    return {
        "project": names.project, "model_name": names.model_name, "dataset": names.dataset,
        "data": names.data, "task": profile.task, "metric": profile.metric, "estimator": estimator,
        "hyper": hyper, "algorithm": algorithm, "target": literal(profile.target),
        "features": list_literal(features, len("FEATURES = ")),
        "categorical": list_literal(categorical, len("CATEGORICAL = ")),
    }


def template_files(task: str) -> dict[str, Path]:
    """Project-relative output path -> template, for task."""
    found = {}
    for path in sorted(TEMPLATES.rglob("*.tmpl")):
        rel = path.relative_to(TEMPLATES).as_posix()[:-len(".tmpl")]
        stem, _, variant = rel.rpartition(".")
        if variant in MODELS:
            if variant == task:
                found[stem] = path
        else:
            found[rel] = path
    return found


def _plain(value):
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return value.item() if hasattr(value, "item") else value


def smoke_records(frame, profile: Profile, count: int = 2) -> list[dict]:
    """count rows of frame as records of the features (nulls as null): a row with a null first, if any."""
    features = [c.name for c in profile.features]
    rows = frame[features]
    with_null = rows.index[rows.isna().any(axis=1)]
    order = list(with_null[:1]) + [i for i in rows.index[:count + 1] if i not in with_null[:1]]
    return [{name: _plain(rows.at[i, name]) for name in features} for i in order[:count]]


def project_files(profile: Profile, names: ProjectNames, frame, source: str) -> dict[str, str]:
    """Repository-relative path -> text of every file of the project, its contract and smoke payload."""
    values = template_values(profile, names)
    files = {f"{names.project}/{rel}": render(path.read_text(encoding="utf-8"), values, str(path))
             for rel, path in template_files(profile.task).items()}
    files[f"{names.project}/scoring/smoke.json"] = json.dumps({"data": smoke_records(frame, profile)}) + "\n"
    files[names.contract] = json.dumps(build_suite(profile, names.dataset, source), indent=2,
                                       ensure_ascii=False) + "\n"
    return files
