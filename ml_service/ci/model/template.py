"""Compile-time processing of Azure Pipelines YAML, as Azure DevOps does before a run starts.

Typed parameters (defaults, allowed values), ${{ }} expressions, ${{ if }} / ${{ elseif }} /
${{ else }} and ${{ each }} insertion in mappings and sequences, and `template:` references for
steps, jobs, stages and variables (each template with its own typed parameters).

Azure's limits apply: at most MAX_FILES template files per pipeline, MAX_DEPTH levels of nesting,
no include cycle, and at most MAX_EXPANDED nodes once expanded; YAML is read within bounds
(yamlload.py). Every error names the file and, where it can, the line.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from ml_service.ci.model import expressions as ex
from ml_service.ci.model.yamlload import Mapping, YamlError, load_file, load_text, located
from ml_service.errors import MLOpsError

DIRECTIVE = re.compile(r"^\$\{\{\s*(if|elseif|else|each)\b(.*?)\}\}$", re.DOTALL)
INSERT = re.compile(r"^\$\{\{\s*insert\s*\}\}$")  # templates.md: "use the special property ${{ insert }}"
EACH = re.compile(r"^\s*(\w+)\s+in\s+(.+)$", re.DOTALL)
NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")
PARAM_TYPES = {"string", "stringList", "number", "boolean", "object", "step", "stepList", "job", "jobList",
               "deployment", "deploymentList", "stage", "stageList"}
PARAM_KEYS = {"name", "displayName", "type", "default", "values"}
MAX_FILES = 100  # Azure: no more than 100 separate YAML files included, directly or indirectly
MAX_DEPTH = 20  # Azure: no more than 20 levels of template nesting
MAX_EXPANDED = 100_000  # nodes of an expanded pipeline (${{ each }} multiplies them); the shipped ones: < 2,000
BOOLEAN_WORDS = {"true": True, "y": True, "yes": True, "on": True, "false": False, "n": False, "no": False,
                 "off": False}


class TemplateError(MLOpsError):
    """A pipeline file or template cannot be compiled; the message names the file and the problem."""


def expression_spans(text: str) -> list[tuple[int, int, str]]:
    """(start, end, inner text) of each ${{ }} in text. As Azure's template reader finds them (TemplateReader's
    ParseScalar, shared with GitHub Actions' runner): after `${{` the first `}}` outside a 'single-quoted'
    string closes it, so `${{ format('{{{0}}}', 'a') }}` is one expression; an unclosed one is an error."""
    spans, position = [], 0
    while True:
        start = text.find("${{", position)
        if start < 0:
            return spans
        in_string, index = False, start + 3
        while index < len(text):
            char = text[index]
            if char == "'":
                in_string = not in_string  # '' (an escaped quote) flips twice
            elif not in_string and text.startswith("}}", index):
                break
            index += 1
        else:
            raise TemplateError(f"the expression is not closed (no '}}}}'): {text[start:start + 80]!r}")
        spans.append((start, index + 2, text[start + 3:index]))
        position = index + 2


def whole_expression(text: str) -> str | None:
    """The inner text when text (stripped) is exactly one ${{ }}; else None."""
    stripped = text.strip()
    if not stripped.startswith("${{"):
        return None
    try:
        spans = expression_spans(stripped)
    except TemplateError:
        return None
    return spans[0][2] if len(spans) == 1 and spans[0][:2] == (0, len(stripped)) else None


def read_yaml(path: Path) -> Any:
    """Load one YAML file (bounded, duplicate keys refused) with a clear error."""
    try:
        return load_file(Path(path))
    except YamlError as exc:
        raise TemplateError(str(exc)) from None


def _typed(name: str, kind: str, value: Any, where: str) -> Any:
    if kind == "boolean":
        if isinstance(value, bool):
            return value
        word = str(value).strip().lower()
        if word not in BOOLEAN_WORDS:
            raise TemplateError(f"{where}: parameter '{name}' must be a boolean, got {value!r}")
        return BOOLEAN_WORDS[word]
    if kind == "number":  # digits, a sign, a point, an exponent: never nan, inf, 1_000 or 0x10
        text = str(value).strip() if not isinstance(value, (bool, dict, list)) else ""
        number = float(text) if NUMBER.match(text) else float("nan")
        if number != number or number in (float("inf"), float("-inf")):
            raise TemplateError(f"{where}: parameter '{name}' must be a number, got {value!r}"[:300])
        return int(number) if number.is_integer() and "e" not in text.lower() and "." not in text else number
    if kind == "stringList":
        items = value if isinstance(value, list) else [value]
        if not all(isinstance(item, (str, int, float)) and not isinstance(item, bool) for item in items):
            raise TemplateError(f"{where}: parameter '{name}' must be a list of strings")
        return [str(item) for item in items]
    if kind == "string":
        if isinstance(value, (dict, list)):
            raise TemplateError(f"{where}: parameter '{name}' must be a string")
        return ex.to_str(value) if isinstance(value, bool) else ("" if value is None else str(value))
    if isinstance(value, str) and kind != "string":  # from the command line: read as YAML, within bounds
        try:
            value = load_text(value, f"parameter '{name}'") if value.strip() else value
        except YamlError as exc:
            raise TemplateError(f"{where}: {exc}") from None
    if kind.endswith("List") and not isinstance(value, list):
        raise TemplateError(f"{where}: parameter '{name}' must be a list ({kind})")
    return value


def resolve_parameters(declared: Any, given: dict[str, Any], where: str, template: bool = False) -> dict[str, Any]:
    """Apply defaults, types and allowed values; refuse unknown and missing parameters.

    A template that declares its parameters in the old mapping form (name: default), or declares none,
    accepts whatever it is passed, as Azure DevOps does (OpenAstronomy's run-tox-env.yml, MLOpsManufacturing's
    dependency-update-template.yml run that way on Azure); only the typed list form refuses an unknown one.
    """
    if declared is None:
        if template:
            return dict(given)
        declared = []
    if isinstance(declared, dict):  # the old shorthand: name: default
        extra = {k: v for k, v in given.items() if k not in declared}
        values = resolve_parameters([{"name": k, "default": v, "type": "object"} for k, v in declared.items()],
                                    {k: v for k, v in given.items() if k in declared}, where)
        return {**values, **extra}
    if not isinstance(declared, list):
        raise TemplateError(f"{where}: 'parameters' must be a list")
    if not all(isinstance(spec, dict) and "name" in spec for spec in declared):
        raise TemplateError(f"{where}: every parameter needs a name")
    known = {spec["name"] for spec in declared}
    unknown = sorted(map(str, set(given) - known))
    if unknown:
        declared_names = ", ".join(sorted(map(str, known))) or "none"
        raise TemplateError(f"{where}: unknown parameter(s) {', '.join(unknown)} (declared: {declared_names})")
    values = {}
    for spec in declared:
        unknown_keys = sorted(set(map(str, spec)) - PARAM_KEYS)
        if unknown_keys:
            at = spec.where(unknown_keys[0]) if isinstance(spec, Mapping) else where
            raise TemplateError(f"{at}: unknown key '{unknown_keys[0]}' in parameter '{spec['name']}' (expected one "
                                f"of: {', '.join(sorted(PARAM_KEYS))})")
        name, kind = spec["name"], spec.get("type", "string")
        if kind not in PARAM_TYPES:
            raise TemplateError(f"{where}: parameter '{name}' has unknown type '{kind}'")
        if name in given:
            value = given[name]
        elif "default" in spec:
            value = spec["default"]
        else:
            raise TemplateError(f"{where}: parameter '{name}' is required and has no default")
        value = _typed(name, kind, value, where)
        allowed = spec.get("values")
        if allowed is not None:
            if not isinstance(allowed, list):
                raise TemplateError(f"{where}: 'values' of parameter '{name}' must be a list")
            for item in value if kind == "stringList" else [value]:
                if not any(ex.equals(item, a) for a in allowed):
                    raise TemplateError(f"{where}: parameter '{name}' must be one of {allowed}, got {item!r}"[:300])
        values[name] = value
    return values


class Compiler:
    """Expands one pipeline file (and the templates it references)."""

    def __init__(self, root: Path, predefined: dict[str, str] | None = None, repositories=None):
        self.root = Path(root)
        self.repositories = repositories  # repositories.Templates: where `template: file@alias` is read from
        self.predefined = dict(predefined or {})  # the predefined variables Azure knows at compile time
        self.stack: list[Path] = []  # the template files being expanded, outermost first
        self.files = 0
        self.nodes = 0

    def compile(self, path: Path, parameters: dict[str, Any] | None = None) -> dict:
        """The expanded pipeline document."""
        path = Path(path)
        document = read_yaml(path)
        if not isinstance(document, dict):
            raise TemplateError(f"{path}: a pipeline must be a mapping")
        params = resolve_parameters(document.get("parameters"), parameters or {}, _where(document, "parameters", path))
        if self.repositories is not None:
            from ml_service.ci.model.repositories import declared

            self.repositories.resources = declared(document)
        context = {"parameters": params, "variables": dict(self.predefined)}
        body = located(document, {k: v for k, v in document.items() if k != "parameters"})
        self.stack = [path.resolve()]
        if "extends" not in body:
            return self.expand(body, context, path)
        root = self.expand(located(document, {k: v for k, v in body.items() if k != "extends"}), context, path)
        if isinstance(body.get("variables"), (dict, list)):  # the template sees the pipeline's variables
            context = self._variables(body["variables"], context, path)[1]
        root["extends"] = body["extends"]
        return self._extends(located(document, root), context, path)

    def expand(self, node: Any, context: dict, path: Path) -> Any:
        """Evaluate template expressions and insertions in node."""
        self.nodes += 1
        if self.nodes > MAX_EXPANDED:
            raise TemplateError(f"{path}: the pipeline expands to more than {MAX_EXPANDED} nodes (Azure limits the "
                                "size of an expanded pipeline)")
        if isinstance(node, str):
            return self._string(node, context, path)
        if isinstance(node, list):
            return self._sequence(node, context, path)
        if isinstance(node, dict):
            return self._mapping(node, context, path)
        return node

    def _root_of(self, path: Path) -> Path:
        """The repository root a template in path reads absolute template paths from: the pipeline's own root,
        or the clone of another repository the template came from."""
        resolved = Path(path).resolve()
        if self.repositories is not None:
            for clone in self.repositories.clones.values():
                if str(resolved).startswith(str(clone.resolve()) + "/"):
                    return clone
        return self.root

    def _eval(self, text: str, context: dict, path: Path) -> Any:
        try:
            return ex.run(text, ex.Context(context))
        except ex.ExpressionError as exc:
            raise TemplateError(f"{path}: {exc}") from None

    def _string(self, text: str, context: dict, path: Path) -> Any:
        whole = whole_expression(text)
        if whole is not None:
            value = self._eval(whole, context, path)
            return None if isinstance(value, ex._Missing) else value
        try:
            spans = expression_spans(text)
        except TemplateError as exc:
            raise TemplateError(f"{path}: {exc}") from None
        out, position = [], 0
        for start, end, inner in spans:
            try:
                value = ex.text(self._eval(inner, context, path))
            except ex.ExpressionError as exc:
                raise TemplateError(f"{path}: ${{{{{inner}}}}}: {exc}") from None
            out += [text[position:start], value]
            position = end
        return "".join(out) + text[position:]

    def _directive(self, key: Any):
        if isinstance(key, str):
            match = DIRECTIVE.match(key.strip())
            if match:
                return match.group(1), match.group(2).strip()
        return None

    def _conditional_branches(self, items, context, path):
        """Yield the values of if/elseif/else chains that apply; other items unchanged."""
        chain_open, chain_taken = False, False
        for key, value in items:
            directive = self._directive(key)
            if directive and directive[0] in ("if", "elseif", "else"):
                kind, condition = directive
                if kind == "if":
                    chain_open, chain_taken = True, False
                elif not chain_open:
                    raise TemplateError(f"{path}: '${{{{ {kind} }}}}' without a preceding '${{{{ if }}}}'")
                taken = not chain_taken and (kind == "else" or ex.to_bool(self._eval(condition, context, path)))
                if kind == "else":  # the chain ends here, whichever branch was taken
                    chain_open = False
                if taken:
                    chain_taken = True
                    yield ("insert", value)
                continue
            chain_open = False
            if directive and directive[0] == "each":
                match = EACH.match(directive[1])
                if not match:
                    raise TemplateError(f"{path}: malformed '${{{{ each }}}}': {key}")
                collection = self._eval(match.group(2), context, path)
                if isinstance(collection, dict):
                    collection = [{"key": k, "value": v} for k, v in collection.items()]
                if collection and not isinstance(collection, list):
                    raise TemplateError(f"{path}: '${{{{ each }}}}' needs a list or a mapping, got "
                                        f"{str(collection)[:60]!r}")
                if collection:  # refuse an explosion before expanding it (nested eaches multiply)
                    sample = {**context, match.group(1): collection[0]}
                    estimate = len(collection) * self._estimate(value, sample, path)
                    if self.nodes + estimate > MAX_EXPANDED:
                        raise TemplateError(f"{path}: the pipeline expands to more than {MAX_EXPANDED} nodes "
                                            f"(${{{{ each }}}} over {len(collection)} items, about {estimate} nodes)")
                for item in collection or []:
                    yield ("insert-with", (value, {**context, match.group(1): item}))
                continue
            yield ("item", (key, value))

    def _estimate(self, node: Any, context: dict, path: Path, depth: int = 0) -> int:
        """About how many nodes node expands to: nested ${{ each }} multiply by their collection's length."""
        if depth > MAX_DEPTH or isinstance(node, str) or not isinstance(node, (list, dict)):
            return 1
        if isinstance(node, list):
            return 1 + sum(self._estimate(item, context, path, depth + 1) for item in node)
        total = 1
        for key, value in node.items():
            directive = self._directive(key)
            match = EACH.match(directive[1]) if directive and directive[0] == "each" else None
            times = 1
            if match:
                try:
                    collection = self._eval(match.group(2), context, path)
                except TemplateError:  # it reads the loop's variable: count it once
                    collection = None
                times = len(collection) if isinstance(collection, (list, dict)) and collection else 1
            total += 1 + times * self._estimate(value, context, path, depth + 1)
        return total

    def _variables(self, block: Any, context: dict, path: Path) -> tuple[Any, dict]:
        """A `variables:` block expanded entry by entry, and the context the rest of its pipeline, stage or job
        sees: ${{ variables.x }} reads every variable defined so far in scope (list or mapping form, variable
        templates, earlier entries of the same block), as Azure's template expansion does
        (docs/pipelines/process/templates.md "Template expressions")."""
        scope = {**context, "variables": dict(context.get("variables") or {})}

        def collect(items) -> None:
            for item in items:
                if isinstance(item, dict) and "name" in item and "group" not in item:
                    scope["variables"][str(item["name"])] = item.get("value", "")
        if isinstance(block, list):
            return self._sequence(block, scope, path, collect), scope
        if isinstance(block, dict):
            return self._mapping(block, scope, path, lambda key, value: scope["variables"].__setitem__(
                str(key), value)), scope
        return self.expand(block, context, path), context

    def _mapping(self, node: dict, context: dict, path: Path, collect=None) -> dict:
        result: dict = located(node, {})
        declared = None
        if collect is None and isinstance(node.get("variables"), (dict, list)) and \
                not any(self._directive(k) for k in node):
            declared, context = self._variables(node["variables"], context, path)
        for kind, payload in self._conditional_branches(node.items(), context, path):
            if kind == "item":
                key, value = payload
                if isinstance(key, str) and INSERT.match(key.strip()):  # ${{ insert }}: splice a mapping in
                    spliced = self.expand(value, context, path)
                    if spliced is not None and not isinstance(spliced, dict):
                        raise TemplateError(f"{_where(node, key, path)}: '${{{{ insert }}}}' in a mapping needs a "
                                            "mapping")
                    for inserted_key, inserted in (spliced or {}).items():
                        result[inserted_key] = inserted
                        if collect is not None:
                            collect(inserted_key, inserted)
                    continue
                try:
                    new_key = self._string(key, context, path) if isinstance(key, str) else key
                    result[new_key] = declared if (key == "variables" and declared is not None) else \
                        self.expand(value, context, path)
                    if collect is not None:
                        collect(new_key, result[new_key])
                except TemplateError as exc:  # an expression error: say on which line
                    prefix = f"{path}: "
                    if isinstance(node, Mapping) and key in node.lines and str(exc).startswith(prefix):
                        raise TemplateError(f"{path}:{node.lines[key]}: {str(exc)[len(prefix):]}") from None
                    raise
                if isinstance(result, Mapping) and key in result.lines:
                    result.lines[new_key] = result.lines[key]
                continue
            value, scope = (payload, context) if kind == "insert" else payload
            expanded = self.expand(value, scope, path)
            if expanded is None:
                continue
            if not isinstance(expanded, dict):
                raise TemplateError(f"{path}: a conditional insertion in a mapping must hold a mapping")
            result.update(expanded)
            if collect is not None:
                for key, value in expanded.items():
                    collect(key, value)
            if isinstance(result, Mapping) and isinstance(expanded, Mapping):
                result.lines.update(expanded.lines)
        if isinstance(result.get("upload"), str) and "publish" not in result:  # the deprecated spelling of publish
            result = located(result, {("publish" if k == "upload" else k): v for k, v in result.items()})
            if isinstance(result, Mapping) and "upload" in result.lines:
                result.lines["publish"] = result.lines["upload"]
        return result

    def _sequence(self, node: list, context: dict, path: Path, collect=None) -> list:
        result: list = []
        pending: list = []  # consecutive directive items: one if/elseif/else chain can span several
        collect = collect or (lambda items: None)

        def flush():
            for kind, payload in self._conditional_branches(pending, context, path):
                value, scope = (payload, context) if kind == "insert" else payload
                expanded = self.expand(value, scope, path)
                if expanded is not None:
                    added = expanded if isinstance(expanded, list) else [expanded]
                    result.extend(added)
                    collect(added)
            pending.clear()

        for item in node:
            if isinstance(item, dict) and item and all(self._directive(k) for k in item):
                pending.extend(item.items())
                continue
            flush()
            if isinstance(item, dict) and "template" in item:
                added = self._include(item, context, path)
            elif isinstance(item, str) and whole_expression(item) is not None:
                # `- ${{ parameters.preBuild }}` with a stepList: the list's items take the item's place
                # (docs/pipelines/process/templates.md, "Parameter data types": steps `- ${{ parameters.preBuild }}`)
                value = self.expand(item, context, path)
                added = value if isinstance(value, list) else [value]
            else:
                added = [self.expand(item, context, path)]
            result.extend(added)
            collect(added)
        flush()
        return result

    def _target(self, item: dict, context: dict, path: Path, where: str) -> tuple[Path, Path]:
        """The file a `template:` reference names (also `file@repository`), checked against Azure's limits."""
        ref = str(self._string(str(item["template"]), context, path))
        base, alias = path.parent, ""
        if "@" in ref:  # template: file@alias (docs/pipelines/process/templates.md "Use other repositories")
            ref, alias = ref.rsplit("@", 1)
        if alias and alias != "self":
            if self.repositories is None:
                raise TemplateError(f"{where}: template {ref}@{alias} is in repository '{alias}': map it in mlops.yml "
                                    f"(ci: {{repositories: {{{alias}: <local path or git URL>}}}})")
            from ml_service.ci.model.repositories import RepositoryError

            try:
                repo_root = self.repositories.root(alias, where)
            except RepositoryError as exc:
                raise TemplateError(str(exc)) from None
            target = repo_root / ref.lstrip("/")
        else:
            target = (base / ref) if not ref.startswith("/") else self._root_of(path) / ref.lstrip("/")
        resolved = target.resolve()
        if resolved in self.stack:
            chain = " -> ".join(p.name for p in [*self.stack, resolved])
            raise TemplateError(f"{where}: template include cycle: {chain}")
        if len(self.stack) > MAX_DEPTH:  # the stack holds the pipeline too
            raise TemplateError(f"{where}: templates nested more than {MAX_DEPTH} levels deep (Azure's limit)")
        self.files += 1
        if self.files > MAX_FILES:
            raise TemplateError(f"{where}: more than {MAX_FILES} template files included (Azure's limit)")
        return target, resolved

    def _open_template(self, item: dict, context: dict, path: Path, where: str, place: str):
        """A `template:` reference read: (file, resolved file, its document, the scope its body sees: its typed
        parameters from the ones given, and the variables so far)."""
        unknown = sorted(set(item) - {"template", "parameters"})
        if unknown:
            raise TemplateError(f"{where}: unknown key(s) {', '.join(map(str, unknown))} {place} "
                                "(expected: template, parameters)")
        target, resolved = self._target(item, context, path, where)
        given = self.expand(item.get("parameters") or {}, context, path)
        document = read_yaml(target)
        if not isinstance(document, dict):
            raise TemplateError(f"{target}: a template must be a mapping")
        params = resolve_parameters(document.get("parameters"), given, _where(document, "parameters", target),
                                    template=True)
        return target, resolved, document, {"parameters": params, "variables": context.get("variables", {})}

    def _extends(self, document: dict, context: dict, path: Path) -> dict:
        """The root pipeline with `extends: {template, parameters}` replaced by what the template holds
        (docs/pipelines/security/templates.md "Extends templates"): its stages, jobs or steps, and its variables
        after the pipeline's own; a template may extend another in turn."""
        item = document["extends"]
        where = _where(document, "extends", path)
        if not isinstance(item, Mapping) or "template" not in item:
            raise TemplateError(f"{where}: extends needs a mapping with 'template' (and optional 'parameters')")
        target, resolved, template, scope = self._open_template(item, context, path, where, "in extends")
        self.stack.append(resolved)
        try:
            body = located(template, {k: v for k, v in template.items() if k != "parameters"})
            if "extends" in body:
                body = self._extends(body, scope, target)
            expanded = self.expand(body, scope, target)
        finally:
            self.stack.pop()
        merged = located(document, {k: v for k, v in document.items() if k != "extends"})
        for key, value in expanded.items():
            if key == "variables" and merged.get("variables"):
                merged[key] = _variable_list(merged[key]) + _variable_list(value)
            else:
                merged[key] = value
        return merged

    def _include(self, item: dict, context: dict, path: Path) -> list:
        """Expand a `- template: file` reference into the items it contributes."""
        where = _where(item, "template", path)
        target, resolved, document, scope = self._open_template(item, context, path, where, "beside 'template'")
        self.stack.append(resolved)
        try:
            for section in ("steps", "jobs", "stages", "variables"):
                if section in document:
                    expanded = self._variables(document[section], scope, target)[0] if section == "variables" \
                        else self.expand(document[section], scope, target)
                    if isinstance(expanded, dict) and section == "variables":
                        expanded = [{"name": k, "value": v} for k, v in expanded.items()]
                    return expanded or []
        finally:
            self.stack.pop()
        raise TemplateError(f"{target}: a template needs steps, jobs, stages or variables")


def _variable_list(block: Any) -> list:
    """A variables block in list form (a mapping becomes name/value entries)."""
    if isinstance(block, Mapping):
        return [{"name": k, "value": v} for k, v in block.items()]
    return list(block or [])


def _where(node, key, path: Path) -> str:
    """'file:line' of key in node when the node knows it, else the file."""
    return node.where(key) if isinstance(node, Mapping) and key in node else str(path)
