"""Offline rendering and validation of the Helm chart in charts/scoring (no helm binary needed).

The chart's templates stay within a small Go-template subset: `{{ .Values.x.y }}`, `.Release.Name`,
`.Chart.Name`, `quote`, `printf`, `not`, pipes, and `if` / `else` / `end` with `{{-` / `-}}`
whitespace trimming. This module renders exactly that subset, so the templates are the one source
of truth for the Kubernetes objects: helm installs them, this renders them for validation (and a
template using anything else fails here, loudly). Where helm is on PATH, a test runs `helm lint` and
checks that `helm template` renders the same objects as this module.
"""
from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import yaml

from ml_service.errors import MLOpsError

ACTION = re.compile(r"\{\{(-?)\s*(.*?)\s*(-?)\}\}", re.DOTALL)


class ChartError(MLOpsError):
    """The chart cannot be rendered or its values are invalid; the message says where."""


def load_values(chart: Path, *files: Path) -> dict:
    """values.yaml merged with the given files (later files win, mappings merged deeply)."""
    values = yaml.safe_load((chart / "values.yaml").read_text()) or {}
    for file in files:
        values = merge_values(values, yaml.safe_load(Path(file).read_text()) or {})
    return values


def merge_values(base: dict, extra: dict) -> dict:
    """base with extra merged in: mappings deeply, anything else replaced."""
    merged = dict(base)
    for key, value in extra.items():
        both_mappings = isinstance(value, dict) and isinstance(merged.get(key), dict)
        merged[key] = merge_values(merged[key], value) if both_mappings else value
    return merged


def validate_values(chart: Path, values: dict) -> None:
    """Check values against values.schema.json; raise ChartError naming every problem."""
    import jsonschema

    schema = json.loads((chart / "values.schema.json").read_text())
    errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(values), key=lambda e: list(e.path))
    if errors:
        lines = [f"  {'.'.join(map(str, e.path)) or '(root)'}: {e.message}" for e in errors]
        raise ChartError("values do not match values.schema.json:\n" + "\n".join(lines))


def _lookup(path: str, scope: dict):
    parts = path.lstrip(".").split(".")
    value = scope
    for part in parts:
        if not isinstance(value, dict) or part not in value:
            raise ChartError(f"no value .{'.'.join(parts)}")
        value = value[part]
    return value


def _arg(token: str, scope: dict):
    if token.startswith("."):
        return _lookup(token, scope)
    if token in ("true", "false"):
        return token == "true"
    if re.fullmatch(r"-?\d+", token):
        return int(token)
    return token  # a quoted string, already unquoted by shlex


def _call(name: str, args: list):
    if name == "quote":
        return json.dumps("" if args[-1] is None else _text(args[-1]))
    if name == "not":
        return not args[-1]
    if name == "printf":
        return args[0] % tuple(_text(a) for a in args[1:])
    raise ChartError(f"template function '{name}' is outside the supported subset")


def _text(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def _evaluate(expression: str, scope: dict):
    result = None
    for index, stage in enumerate(part.strip() for part in expression.split("|")):
        tokens = shlex.split(stage)
        if not tokens:
            raise ChartError(f"empty pipeline stage in '{expression}'")
        if tokens[0].startswith(".") and len(tokens) == 1 and index == 0:
            result = _lookup(tokens[0], scope)
            continue
        args = [_arg(t, scope) for t in tokens[1:]] + ([result] if index > 0 else [])
        result = _call(tokens[0], args)
    return result


def render_template(text: str, scope: dict, where: str = "template") -> str:
    """Render one template of the supported subset."""
    out: list[str] = []
    stack: list[tuple[bool, bool]] = []  # (this branch active, parent active)
    position = 0
    for match in ACTION.finditer(text):
        chunk = text[position:match.start()]
        if match.group(1):
            chunk = chunk.rstrip()
        if all(active for active, _ in stack):
            out.append(chunk)
        position = match.end()
        if match.group(3):
            rest = text[position:]
            position += len(rest) - len(rest.lstrip())
        action = match.group(2)
        active = all(a for a, _ in stack)
        try:
            if action.startswith("if "):
                stack.append((bool(_evaluate(action[3:], scope)) if active else False, active))
            elif action == "else":
                condition, parent = stack.pop()
                stack.append((parent and not condition, parent))
            elif action == "end":
                stack.pop()
            elif active:
                out.append(_text(_evaluate(action, scope)))
        except IndexError:
            raise ChartError(f"{where}: unbalanced if/else/end") from None
        except ChartError as exc:
            raise ChartError(f"{where}: {exc}") from None
    if stack:
        raise ChartError(f"{where}: an if is not closed with end")
    out.append(text[position:])
    return "".join(out)


def render(chart: Path, values: dict, release: str = "scoring") -> list[dict]:
    """Every Kubernetes object the chart renders for these values."""
    meta = yaml.safe_load((chart / "Chart.yaml").read_text())
    scope = {"Values": values, "Release": {"Name": release, "Namespace": "default"},
             "Chart": {"Name": meta["name"], "Version": meta["version"]}}
    objects = []
    for template in sorted((chart / "templates").glob("*.yaml")):
        text = render_template(template.read_text(), scope, str(template))
        for document in yaml.safe_load_all(text):
            if document:
                objects.append(document)
    return objects
