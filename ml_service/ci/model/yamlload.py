"""Read pipeline YAML strictly and within bounds, keeping the line of every mapping key.

An alias bomb is refused while the file is read: at most MAX_ALIASES aliases, and the document
as it would be expanded (every alias counted at its full size) at most MAX_NODES nodes. A file
over MAX_FILE_BYTES is refused before it is parsed. Duplicate keys are errors (as in Azure
DevOps). Mappings load as `Mapping` (a dict that knows its file and the line of each key), so
later checks can say where a problem is.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, SequenceNode

from ml_service.errors import UsageError

MAX_FILE_BYTES = 1024 * 1024  # Azure: 10 MB of parser memory, "typically 600 KB - 2 MB on disk"
MAX_ALIASES = 100
MAX_NODES = 1_000_000  # of one document, aliases expanded
_BASE = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml composes the nodes; the bounds are checked on them


class YamlError(UsageError, ValueError):
    """The file cannot be read as bounded, unambiguous YAML; the message has file and line."""


class Mapping(dict):
    """A mapping read from a file: `where(key)` is 'file:line' of that key."""

    file: str = ""
    line: int = 0
    lines: dict

    def where(self, key: Any = None) -> str:
        """'file:line' of key (or of the mapping itself)."""
        lines = getattr(self, "lines", {})
        line = lines.get(key, self.line)
        return f"{self.file}:{line}" if self.file and line else (self.file or "?")


def located(source: Any, result: dict) -> dict:
    """result as a Mapping that keeps source's locations (for the keys it shares with source)."""
    if not isinstance(source, Mapping):
        return result
    mapping = Mapping(result)
    mapping.file, mapping.line = source.file, source.line
    mapping.lines = dict(getattr(source, "lines", {}))
    return mapping


class _Loader(_BASE):
    """The safe loader with duplicate-key errors and located mappings."""

    def __init__(self, stream, file: str):
        super().__init__(stream)
        self.file = file

    def construct_located_mapping(self, node: MappingNode):
        mapping = Mapping()
        mapping.file, mapping.line, mapping.lines = self.file, node.start_mark.line + 1, {}
        yield mapping
        self.flatten_mapping(node)
        for key_node, value_node in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                hash(key)
            except TypeError:
                raise YamlError(f"{self.file}:{key_node.start_mark.line + 1}: a mapping key must be a "
                                "scalar") from None
            if key in mapping:
                raise YamlError(f"{self.file}:{key_node.start_mark.line + 1}: duplicate key '{key}' "
                                f"(first at line {mapping.lines[key]})")
            mapping[key] = self.construct_object(value_node, deep=True)
            mapping.lines[key] = key_node.start_mark.line + 1


_Loader.add_constructor("tag:yaml.org,2002:map", _Loader.construct_located_mapping)


def _text(loader, node) -> str:
    """A plain scalar kept as its text: Azure's parser reads every scalar as a string and converts only where a
    setting needs a boolean or a number (azure-pipelines-agent DistributedTask.Pipelines/Yaml/TypeConverters/
    ConverterUtil.general.cs ReadBoolean / ReadInt32), so 3.10, 0001, on, yes, 0755, 1:30 keep their text."""
    return node.value


for _tag in ("bool", "int", "float", "timestamp"):
    _Loader.add_constructor(f"tag:yaml.org,2002:{_tag}", _text)


def _size(node, file: str, sizes: dict, active: set, aliases: list) -> int:
    """Nodes of the document as expanded (an alias counts as its anchor's full size)."""
    key = id(node)
    if key in sizes:  # a node met again is an alias of it
        aliases[0] += 1
        if aliases[0] > MAX_ALIASES:
            raise YamlError(f"{file}:{node.start_mark.line + 1}: more than {MAX_ALIASES} YAML aliases (refused: "
                            "aliases can expand a small file without bound)")
        return sizes[key]
    if key in active:
        raise YamlError(f"{file}:{node.start_mark.line + 1}: a recursive YAML alias (refused)")
    active.add(key)
    total = 1
    if isinstance(node, SequenceNode):
        children = node.value
    elif isinstance(node, MappingNode):
        children = [n for pair in node.value for n in pair]
    else:
        children = []
    for child in children:
        total += _size(child, file, sizes, active, aliases)
        if total > MAX_NODES:
            raise YamlError(f"{file}:{node.start_mark.line + 1}: the document expands to more than {MAX_NODES} "
                            "nodes (refused: aliases multiply it)")
    active.discard(key)
    sizes[key] = total
    return total


def load_text(text: str, file: str) -> Any:
    """Parse one YAML document within the bounds; YamlError names file and line."""
    if len(text.encode(errors="replace")) > MAX_FILE_BYTES:
        raise YamlError(f"{file}: larger than {MAX_FILE_BYTES // 1024} KB (Azure refuses pipelines that large)")
    loader = _Loader(text, file)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _size(node, file, {}, set(), [0])
        return loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{file}:{mark.line + 1}" if mark else file
        raise YamlError(f"{where}: malformed YAML: {exc.problem or exc}") from None
    except yaml.YAMLError as exc:
        raise YamlError(f"{file}: malformed YAML: {exc}") from None
    except RecursionError:
        raise YamlError(f"{file}: nested too deeply") from None
    finally:
        loader.dispose()


def load_file(path: Path) -> Any:
    """Read and parse one YAML file within the bounds."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise YamlError(f"{path}: file not found") from None
    if size > MAX_FILE_BYTES:
        raise YamlError(f"{path}: larger than {MAX_FILE_BYTES // 1024} KB (Azure refuses pipelines that large)")
    return load_text(path.read_text(errors="replace"), str(path))
