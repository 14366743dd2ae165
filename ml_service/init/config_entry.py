"""Add a model project to mlops.yml's `models:` list as text: the rest of the file (comments, order) is kept.

The entry is inserted after the last line of the `models:` block (before the comments that introduce
the next top-level section), with the list's own indentation; a file without `models:` gets the key
at its end. The result is parsed again and must equal the old configuration plus exactly this entry.
"""
from __future__ import annotations

import re

import yaml

from ml_service.init import InitError

PLAIN = re.compile(r"^[A-Za-z_./][A-Za-z0-9_./-]*$")
RESERVED = {"y", "n", "yes", "no", "on", "off", "true", "false", "null", "~"}
MODELS_KEY = re.compile(r"^models\s*:(?P<rest>.*)$")


def yaml_scalar(value: str) -> str:
    """value as a YAML scalar: plain when unambiguous, else double-quoted with every character outside
    printable ASCII escaped (YAML's \\x, \\u and \\U escapes: JSON's surrogate pairs do not read back)."""
    if PLAIN.match(value) and value.lower() not in RESERVED and yaml.safe_load(value) == value:
        return value
    return '"' + "".join(_escaped(c) for c in value) + '"'


def _escaped(char: str) -> str:
    code = ord(char)
    if char in '"\\':
        return "\\" + char
    if 0x20 <= code < 0x7F:
        return char
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def entry_text(entry: dict[str, str], indent: str) -> str:
    """The lines of one list item `- key: value ...` at indent."""
    lines = []
    for i, (key, value) in enumerate(entry.items()):
        lead = f"{indent}- " if i == 0 else f"{indent}  "
        lines.append(f"{lead}{key}: {yaml_scalar(str(value))}\n")
    return "".join(lines)


def _block_end(lines: list[str], start: int) -> int:
    """Index after the last line belonging to the block that starts at start (a top-level key)."""
    end = len(lines)
    for j in range(start + 1, len(lines)):
        line = lines[j]
        if line.strip() and not line.startswith((" ", "\t", "#", "-")):
            end = j
            break
    while end > start + 1 and (not lines[end - 1].strip() or lines[end - 1].startswith("#")):
        end -= 1
    return end


def _item_indent(lines: list[str], start: int, end: int) -> str:
    for line in lines[start + 1:end]:
        match = re.match(r"^(\s*)- ", line)
        if match:
            return match.group(1)
    return "  "


def add_model(text: str, entry: dict[str, str], path: str = "mlops.yml") -> str:
    """text with entry appended to its models: list; InitError when that cannot be done by inserting lines."""
    old = yaml.safe_load(text) or {}
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    start = next((i for i, line in enumerate(lines) if MODELS_KEY.match(line)), None)
    if start is None:
        lines += ["\n", "models:\n", entry_text(entry, "  ")]
    else:
        rest = MODELS_KEY.match(lines[start]).group("rest")
        value, _, comment = rest.partition("#")
        if value.strip() == "[]":  # `models: []  # note` -> `models:  # note` (remove_model puts [] back)
            lines[start] = ("models:" + rest.replace("[]", "", 1)).rstrip() + "\n"
        elif value.strip():
            raise InitError(f"{path}: 'models:' is written on one line; write it as a block list "
                            "(one '- project: ...' item per model) and run init again")
        end = _block_end(lines, start)
        lines.insert(end, entry_text(entry, _item_indent(lines, start, end)))
    result = "".join(lines)
    expected = dict(old)
    expected["models"] = list(old.get("models") or []) + [dict(entry)]
    try:
        parsed = yaml.safe_load(result)
    except yaml.YAMLError:
        parsed = None
    if parsed != expected:
        raise InitError(f"{path}: could not add the project under 'models:' without rewriting the file; "
                        f"add this entry by hand:\n{entry_text(entry, '  ')}")
    return result


def _items(lines: list[str], start: int, end: int) -> list[tuple[int, int]]:
    """(first, after-last) line of each list item of the block lines[start+1:end], at the items' indent."""
    indent = _item_indent(lines, start, end)
    heads = [j for j in range(start + 1, end) if re.match(rf"^{re.escape(indent)}- ", lines[j])]
    return [(head, heads[k + 1] if k + 1 < len(heads) else end) for k, head in enumerate(heads)]


def remove_model(text: str, project: str, path: str = "mlops.yml") -> str:
    """text without the models: item of project (its lines only, the rest kept); InitError when that cannot be
    done by deleting lines."""
    old = yaml.safe_load(text) or {}
    models = list(old.get("models") or [])
    kept = [m for m in models if not (isinstance(m, dict) and m.get("project") == project)]
    if len(kept) == len(models):
        raise InitError(f"{path}: no model project {project!r} under 'models:'")
    expected = dict(old)
    expected["models"] = kept
    lines = text.splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if MODELS_KEY.match(line)), None)
    if start is not None:
        for first, after in _items(lines, start, _block_end(lines, start)):
            candidate = lines[:first] + lines[after:]
            if not kept and not any(line.strip() and not line.lstrip().startswith("#")
                                    for line in candidate[start + 1:_block_end(candidate, start)]):
                rest = MODELS_KEY.match(lines[start].rstrip("\n")).group("rest")
                candidate[start] = f"models: []{rest[1:] if rest.startswith(' ') else rest}".rstrip() + "\n"
            result = "".join(candidate)
            try:
                parsed = yaml.safe_load(result) or {}
            except yaml.YAMLError:
                continue
            if parsed == expected or (not kept and parsed == {**expected, "models": None}):
                return result
    raise InitError(f"{path}: could not remove project {project!r} from 'models:' without rewriting the file; "
                    "delete its entry by hand")
