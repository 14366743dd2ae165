"""`mlops ci lint`: find untrusted values spliced into script text (as zizmor does for GitHub Actions).

Azure's $(macro) and ${{ }} syntax are textual: a branch name, a commit message, a string
parameter or a variable set at run time that is written into a script becomes code. The safe
form passes the value through the step's `env:` and the script reads "$NAME". This check reads
pipeline files as written (templates too) and reports, for every script of a bash, script, pwsh
or powershell step (and the script inputs of shell tasks):

- a ${{ }} expression, unless it only reads parameters typed number or boolean (validated);
- a $(macro) of anything but the agent's own ids and directories or a variable the file declares
  with a plain constant value.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from ml_service.ci.model.yamlload import Mapping, YamlError, load_file

SCRIPT_KEYS = ("script", "bash", "pwsh", "powershell")
TASK_SCRIPT_INPUTS = ("script", "inlinescript", "arguments")
EXPRESSION = re.compile(r"\$\{\{(.*?)\}\}", re.DOTALL)
MACRO = re.compile(r"\$\(([A-Za-z_][\w.\-]*)\)")
PARAMETER = re.compile(r"\bparameters\.([A-Za-z_]\w*)|\bparameters\[\s*'([^']+)'\s*\]")
SAFE_TYPES = ("number", "boolean")
CONSTANT = re.compile(r"^[\w@%+=:,./ -]*$")  # a value with nothing a shell would read as code
# Set by the agent, not by whoever pushes or queues: ids and directories.
TRUSTED = {name.lower() for name in (
    "Build.BuildId", "Build.ArtifactStagingDirectory", "Build.StagingDirectory", "Build.BinariesDirectory",
    "Build.SourcesDirectory", "Build.Repository.LocalPath", "System.DefaultWorkingDirectory",
    "System.ArtifactsDirectory", "Agent.TempDirectory", "Agent.BuildDirectory", "Agent.WorkFolder",
    "Agent.ToolsDirectory", "Agent.HomeDirectory", "Pipeline.Workspace", "Agent.OS", "Agent.OSArchitecture",
    "System.JobAttempt", "System.StageAttempt", "System.JobId", "System.PlanId", "Build.BuildNumber.Id",
)}


@dataclass
class Finding:
    """One untrusted value spliced into a script."""

    file: str
    line: int
    value: str
    kind: str

    def __str__(self) -> str:
        env = _env_name(self.value)
        return (f"{self.file}:{self.line}: {self.kind} {self.value} is spliced into a script: it runs as code "
                f"if it holds shell syntax. Fix: env: {{{env}: {self.value}}} on the step, and \"${env}\" in "
                "the script")


def _env_name(value: str) -> str:
    inner = MACRO.fullmatch(value) or EXPRESSION.fullmatch(value)
    text = inner.group(1) if inner else value
    words = re.findall(r"[A-Za-z0-9]+", text.split(".")[-1] if "parameters" in text else text)
    return "_".join(words).upper() or "VALUE"


def _parameter_types(document: Any) -> dict[str, str]:
    declared = document.get("parameters") if isinstance(document, dict) else None
    if isinstance(declared, dict):  # the old shorthand: name: default (untyped)
        return {str(k): "object" for k in declared}
    types = {}
    for spec in declared or []:
        if isinstance(spec, dict) and "name" in spec:
            types[str(spec["name"])] = str(spec.get("type", "string"))
    return types


def _constants(document: Any) -> set[str]:
    """Variables the file declares with a plain constant value (safe to splice)."""
    declared = document.get("variables") if isinstance(document, dict) else None
    pairs = declared.items() if isinstance(declared, dict) else \
        [(v.get("name"), v.get("value")) for v in declared or [] if isinstance(v, dict) and "name" in v]
    return {str(name).lower() for name, value in pairs
            if isinstance(value, (str, int, float)) and CONSTANT.match(str(value))}


def _scripts(node: Any, key_line: int = 0) -> Iterator[tuple[str, int, str]]:
    """(kind, line, text) of every script in node, at any depth."""
    if isinstance(node, list):
        for item in node:
            yield from _scripts(item, key_line)
        return
    if not isinstance(node, dict):
        return
    where = node.lines if isinstance(node, Mapping) else {}
    for key, value in node.items():
        line = where.get(key, key_line)
        if key in SCRIPT_KEYS and isinstance(value, str):
            yield key, line, value
        elif key == "inputs" and "task" in node and isinstance(value, dict):
            inner = value.lines if isinstance(value, Mapping) else {}
            for name, text in value.items():
                if str(name).lower() in TASK_SCRIPT_INPUTS and isinstance(text, str):
                    yield f"task {node['task']} input {name}", inner.get(name, line), text
        else:
            yield from _scripts(value, line)


def _line_of(text: str, position: int, key_line: int) -> int:
    """The file line of a position in a scalar: block scalars start on the line after their key."""
    offset = text.count("\n", 0, position)
    block = "\n" in text.rstrip("\n")
    return key_line + offset + (1 if block else 0)


def lint_document(document: Any, file: str) -> list[Finding]:
    """Findings of one parsed pipeline or template."""
    types = _parameter_types(document)
    constants = _constants(document)
    findings = []
    for kind, line, text in _scripts(document):
        for match in EXPRESSION.finditer(text):
            body = match.group(1)
            params = [a or b for a, b in PARAMETER.findall(body)]
            rest = PARAMETER.sub("", body)
            safe = params and all(types.get(p) in SAFE_TYPES for p in params) and \
                not re.search(r"[A-Za-z_]", re.sub(r"\b(eq|ne|and|or|not|true|false)\b", "", rest))
            if not safe:
                label = f"parameter '{params[0]}' (type {types.get(params[0], 'undeclared')})" if params \
                    else "template expression"
                findings.append(Finding(file, _line_of(text, match.start(), line), match.group(0).strip(), label))
        for match in MACRO.finditer(text):
            name = match.group(1).lower()
            if name in TRUSTED or name in constants:
                continue
            label = "variable" if "." not in name or name.split(".")[0] not in (
                "build", "system", "agent", "pipeline", "environment", "resources", "release") else \
                "predefined variable"
            findings.append(Finding(file, _line_of(text, match.start(), line), match.group(0), label))
    return findings


def template_refs(node: Any, path: Path) -> list[Path]:
    """The local template files a document references (`template: x.yml`, `x.yml@self`), at any depth; refs
    built from ${{ }} expressions or in other repositories are left to the compiler."""
    found: list[Path] = []
    if isinstance(node, list):
        for item in node:
            found += template_refs(item, path)
    elif isinstance(node, dict):
        for key, value in node.items():
            if key == "template" and isinstance(value, str) and "${{" not in value:
                ref, _, alias = value.partition("@")
                if alias in ("", "self"):
                    found.append((_root(path) / ref.lstrip("/")) if ref.startswith("/") else path.parent / ref)
            else:
                found += template_refs(value, path)
    return found


def _root(path: Path) -> Path:
    for folder in Path(path).resolve().parents:
        if (folder / ".git").exists() or (folder / "mlops.yml").exists():
            return folder
    return Path(path).parent


def schema_errors(path: Path) -> list[str]:
    """The schema check of a pipeline file as compiled with its defaults ([] for a template that needs
    parameters, which is checked where it is included)."""
    from ml_service.ci.model import schema
    from ml_service.ci.model.template import Compiler, TemplateError

    try:
        document = Compiler(_root(path)).compile(path)
        schema.check(document, str(path))
    except schema.SchemaError as exc:
        return [str(exc)]
    except TemplateError as exc:
        text = str(exc)
        if any(part in text for part in ("is required and has no default", "repository", "needs steps",
                                         "file not found")):
            return []
        return [text]
    return []


def lint_files(paths: list[Path]) -> tuple[list[Finding], list[str]]:
    """Findings and errors of the given YAML files and of every template they include (followed as the
    compiler follows them), and the schema check of each pipeline as compiled."""
    findings, errors = [], []
    seen: set[Path] = set()
    queue = [Path(p) for p in paths]
    given = {Path(p).resolve() for p in paths}
    while queue:
        path = queue.pop(0)
        if path.resolve() in seen:
            continue
        seen.add(path.resolve())
        if path.resolve() not in given and not path.is_file():
            continue  # a missing template is the compiler's error (the run names it); lint reads what exists
        try:
            document = load_file(path)
        except YamlError as exc:
            errors.append(str(exc))
            continue
        findings += lint_document(document, str(path))
        queue += [ref for ref in template_refs(document, path) if ref.resolve() not in seen]
        if path.resolve() in given and isinstance(document, dict) and \
                any(k in document for k in ("steps", "jobs", "stages")):
            errors += schema_errors(path)
    return findings, errors


def default_files(root: Path) -> list[Path]:
    """Every YAML file under .pipelines/ (pipelines and templates)."""
    folder = Path(root) / ".pipelines"
    return sorted([*folder.rglob("*.yml"), *folder.rglob("*.yaml")])
