"""Azure Pipelines expressions: literals, functions, property and index access.

Used for conditions, ${{ }} template expressions and $[ ] runtime expressions, with Azure's rules:
string comparisons ignore case, the right operand is converted to the left one's type, an empty
string is false and any other string is true, and status functions read the job's state.
"""
from __future__ import annotations

import functools
import json
import re
from datetime import datetime
from typing import Any, Callable

from ml_service.errors import MLOpsError

TOKEN = re.compile(r"""
    \s*(?:
      (?P<version>\d+\.\d+\.\d+(?:\.\d+)?(?![\w.]))
    | (?P<number>-?(?:\d+(?:\.\d+)?|\.\d+)(?![\w.]))
    | '(?P<string>(?:[^']|'')*)'
    | (?P<name>[A-Za-z_][\w\-]*)
    | (?P<punct>[()\[\],.])
    )""", re.VERBOSE)


class ExpressionError(MLOpsError):
    """An expression cannot be parsed or evaluated; the message quotes it."""


class Version(tuple):
    """A version literal (`1.2.3`) or a value converted to one: two to four whole-number parts, compared part by
    part (expressions.md "Version": "Must start with a number and contain two or three period (.) characters")."""

    @classmethod
    def parse(cls, text: str) -> "Version | None":
        """C#'s Version.TryParse: Major.Minor at least, at most four parts, each a non-negative whole number."""
        parts = str(text).strip().split(".")
        if not 2 <= len(parts) <= 4 or not all(p.isdigit() and p.isascii() for p in parts):
            return None
        return cls(int(p) for p in parts)

    def __str__(self) -> str:
        return ".".join(map(str, self))


class _Missing:
    """A property that does not exist: behaves as null / empty string."""

    def __repr__(self) -> str:
        return "null"


def tokenize(text: str) -> list[tuple[str, Any]]:
    """Split an expression into (kind, value) tokens."""
    tokens, pos = [], 0
    text = text.strip()
    while pos < len(text):
        match = TOKEN.match(text, pos)
        if not match or match.end() == pos:
            raise ExpressionError(f"unexpected character at {pos} in expression: {text}")
        pos = match.end()
        kind = match.lastgroup
        value = match.group(kind)
        if kind == "string":
            value = value.replace("''", "'")
        elif kind == "version":
            value = Version.parse(value)
        elif kind == "number":
            value = float(value) if "." in value else int(value)
        tokens.append((kind, value))
    return tokens


class _Parser:
    def __init__(self, text: str):
        self.text = text
        self.tokens = tokenize(text)
        self.pos = 0

    def peek(self, value: str | None = None):
        if self.pos >= len(self.tokens):
            return None
        token = self.tokens[self.pos]
        return token if value is None or token == ("punct", value) else None

    def take(self, value: str | None = None):
        token = self.peek(value)
        if token is None:
            expected = f"'{value}'" if value else "more"
            raise ExpressionError(f"expected {expected} in expression: {self.text}")
        self.pos += 1
        return token

    def parse(self):
        node = self.expression()
        if self.pos != len(self.tokens):
            raise ExpressionError(f"unexpected '{self.tokens[self.pos][1]}' in expression: {self.text}")
        return node

    def expression(self):
        kind, value = self.take()
        if kind in ("number", "string", "version"):
            node = ("literal", value)
        elif kind == "name":
            lowered = value.lower()
            if self.peek("("):
                self.take("(")
                args = []
                if not self.peek(")"):
                    args.append(self.expression())
                    while self.peek(","):
                        self.take(",")
                        args.append(self.expression())
                self.take(")")
                node = ("call", lowered, args)
            elif lowered in ("true", "false"):
                node = ("literal", lowered == "true")
            elif lowered == "null":
                node = ("literal", None)
            else:
                node = ("name", value)
        else:
            raise ExpressionError(f"unexpected '{value}' in expression: {self.text}")
        while True:
            if self.peek("."):
                self.take(".")
                node = ("index", node, ("literal", self.take()[1]))
            elif self.peek("["):
                self.take("[")
                index = self.expression()
                self.take("]")
                node = ("index", node, index)
            else:
                return node


@functools.lru_cache(maxsize=4096)
def parse(text: str):
    """Parse an expression into a small tuple tree (cached: ${{ each }} evaluates the same text many times)."""
    return _Parser(text).parse()


# --- values -----------------------------------------------------------------------------------

def to_bool(value: Any) -> bool:
    """Azure truthiness: null, false, 0 and '' are false; every other value is true."""
    if value is None or isinstance(value, _Missing):
        return False
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return value != 0
    if isinstance(value, str):
        return value != ""
    return True  # a version, a date, an array, an object


def as_bool(value: Any) -> bool:
    """A YAML boolean setting written either way (true or 'true', yes, on ...), as Azure reads it."""
    if isinstance(value, str):
        return value.strip().lower() in ("true", "yes", "y", "on")
    return to_bool(value)


def to_str(value: Any) -> str:
    """Azure string conversion (booleans as True / False, numbers as "0.#######", a date as
    "yyyy-MM-dd HH:mm:sszzz"; the agent's EvaluationResult.TryConvertToString). A list or a mapping has no string
    form: join() makes it empty, other uses are an error."""
    if value is None or isinstance(value, _Missing):
        return ""
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, float):
        return f"{value:.7f}".rstrip("0").rstrip(".") or "0"
    if isinstance(value, datetime):
        return value.isoformat(sep=" ", timespec="seconds")
    if isinstance(value, (dict, list)):  # no string form on Azure (text() refuses it); here: its JSON
        return json.dumps(_plain(value))
    return str(value)


def text(value: Any) -> str:
    """A value where Azure needs a string (a ${{ }} inside text, format()'s arguments): to_str, but a list or
    a mapping is an error, as Azure's TryConvertToString fails for them."""
    if isinstance(value, (dict, list)):
        kind = "Object" if isinstance(value, dict) else "Array"
        raise ExpressionError(f"unable to convert from {kind} to String: an {kind.lower()} cannot be spliced into "
                              "text (use convertToJson() or join())")
    return to_str(value)


def _to_number(value: Any) -> float | None:
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, (int, float)):
        return float(value)
    if value is None or isinstance(value, _Missing):
        return 0.0
    if isinstance(value, (dict, list, Version, datetime)):
        return None
    text = str(value)
    if text == "":
        return 0.0  # expressions.md "String to number": '' is 0
    # otherwise .NET's parse with AllowDecimalPoint | AllowLeadingSign | AllowLeading/TrailingWhite | AllowThousands
    # (expressions.md): '1,000' is 1000; '1e3', '1_000', 'nan', 'inf', '0x10' are not numbers
    if not NUMBER_TEXT.fullmatch(text):
        return None
    return float(text.strip().replace(",", ""))


def _coerce_bool(value: Any) -> bool:
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    return to_bool(value)


def _to_version(value: Any) -> "Version | None":
    if isinstance(value, Version):
        return value
    if isinstance(value, (bool, dict, list)) or value is None or isinstance(value, _Missing):
        return None
    return Version.parse(to_str(value))


def _fold(text: str) -> str:
    """Ordinal ignore-case, as .NET's OrdinalIgnoreCase does it (upper-cased: '_' sorts after 'Z')."""
    return text.upper()


def equals(left: Any, right: Any) -> bool:
    """Azure eq(): convert right to left's type (False when it cannot be); strings compare ignoring case."""
    if isinstance(left, bool):
        return left == _coerce_bool(right)
    if isinstance(left, (int, float)):
        number = _to_number(right)
        return number is not None and float(left) == number
    if isinstance(left, Version):
        return left == _to_version(right)
    if left is None or isinstance(left, _Missing):
        return right is None or isinstance(right, _Missing) or right == ""
    if isinstance(left, (dict, list)):  # the same object only (EvaluationResult.Equals: ReferenceEquals)
        return left is right
    if isinstance(right, (dict, list)):
        return False
    return _fold(to_str(left)) == _fold(to_str(right))


def _compare(left, right) -> int:
    if isinstance(left, Version):
        version = _to_version(right)
        if version is None:
            raise ExpressionError(f"cannot compare version {left} with {to_str(right)!r}: not a version")
        return (left > version) - (left < version)
    if isinstance(left, (int, float)) and not isinstance(left, bool):
        number = _to_number(right)
        if number is None:
            raise ExpressionError(f"cannot compare {left!r} with {right!r}")
        return (left > number) - (left < number)
    a, b = _fold(to_str(left)), _fold(to_str(right))
    return (a > b) - (a < b)


MISSING = _Missing()


class Context:
    """What an expression can see: named roots (variables, parameters, dependencies ...) and status."""

    def __init__(self, roots: dict[str, Any] | None = None, status: Callable[[str], bool] | None = None,
                 counter: Callable[[str, int], int] | None = None):
        self.roots = {k.lower(): v for k, v in (roots or {}).items()}
        self.counter = counter  # counter(prefix, seed): only where Azure allows it, a variable's $[ ] value
        self.status = status or (lambda name, names=(): name in ("succeeded", "succeededorfailed", "always"))


def _index(container: Any, key: Any) -> Any:
    if isinstance(container, dict):
        if key in container:
            return container[key]
        lowered = to_str(key).lower()
        for k, v in container.items():
            if str(k).lower() == lowered:
                return v
        return MISSING
    if isinstance(container, list) and isinstance(key, (int, float)) and 0 <= int(key) < len(container):
        return container[int(key)]
    return MISSING


def evaluate(node, ctx: Context) -> Any:
    """Evaluate a parsed expression."""
    kind = node[0]
    if kind == "literal":
        return node[1]
    if kind == "name":
        return ctx.roots.get(node[1].lower(), MISSING)
    if kind == "index":
        return _index(evaluate(node[1], ctx), evaluate(node[2], ctx))
    name, args = node[1], node[2]
    if name in ("succeeded", "failed", "canceled", "always", "succeededorfailed"):
        names = tuple(to_str(evaluate(a, ctx)) for a in args)
        return ctx.status(name, names) if names else ctx.status(name)
    if name == "and":
        return all(to_bool(evaluate(a, ctx)) for a in args)  # short-circuits, like Azure
    if name == "or":
        return any(to_bool(evaluate(a, ctx)) for a in args)
    if name == "iif":  # only the chosen branch is evaluated
        if len(args) != 3:
            raise ExpressionError(f"iif() needs 3 arguments, got {len(args)}")
        return evaluate(args[1] if to_bool(evaluate(args[0], ctx)) else args[2], ctx)
    values = [evaluate(a, ctx) for a in args]
    if name == "counter":
        if ctx.counter is None:
            raise ExpressionError("counter() can only be used in a variable's $[ ] value (as on Azure)")
        if len(values) != 2:
            raise ExpressionError(f"counter() needs 2 arguments (prefix, seed), got {len(values)}")
        seed = _to_number(values[1])
        if seed is None or not seed.is_integer():
            raise ExpressionError(f"counter(): the seed must be a whole number, got {to_str(values[1])!r}")
        return ctx.counter(to_str(values[0]), int(seed))
    return _call(name, values)


def _call(name: str, values: list) -> Any:
    def need(count: int) -> None:
        if len(values) < count:
            raise ExpressionError(f"{name}() needs {count} argument(s), got {len(values)}")

    if name == "not":
        need(1)
        return not to_bool(values[0])
    if name == "eq":
        need(2)
        return equals(values[0], values[1])
    if name == "xor":
        need(2)
        return to_bool(values[0]) != to_bool(values[1])
    if name == "ne":
        need(2)
        return not equals(values[0], values[1])
    if name in ("gt", "ge", "lt", "le"):
        need(2)
        c = _compare(values[0], values[1])
        return {"gt": c > 0, "ge": c >= 0, "lt": c < 0, "le": c <= 0}[name]
    if name == "in":
        need(1)
        return any(equals(values[0], v) for v in values[1:])
    if name == "notin":
        need(1)
        return not any(equals(values[0], v) for v in values[1:])
    if name == "contains":
        need(2)
        return to_str(values[1]).lower() in to_str(values[0]).lower()
    if name == "containsvalue":
        need(2)
        items = values[0].values() if isinstance(values[0], dict) else values[0] or []
        # expressions.md: "converts each item to match the type of the right parameter"
        return any(equals(values[1], v) for v in items)
    if name == "startswith":
        need(2)
        return to_str(values[0]).lower().startswith(to_str(values[1]).lower())
    if name == "endswith":
        need(2)
        return to_str(values[0]).lower().endswith(to_str(values[1]).lower())
    if name == "coalesce":
        return next((v for v in values if v is not None and not isinstance(v, _Missing) and v != ""), None)
    if name == "lower":
        need(1)
        return to_str(values[0]).lower()
    if name == "upper":
        need(1)
        return to_str(values[0]).upper()
    if name == "replace":
        need(3)
        return to_str(values[0]).replace(to_str(values[1]), to_str(values[2]))
    if name == "join":  # expressions.md: "Complex objects are converted to empty string"
        need(2)
        items = values[1] if isinstance(values[1], list) else [values[1]]
        return to_str(values[0]).join("" if isinstance(v, (dict, list)) else to_str(v) for v in items)
    if name == "format":
        need(1)
        return format_text(to_str(values[0]), values[1:])
    if name == "length":
        need(1)
        return len(values[0]) if isinstance(values[0], (str, list, dict)) else 0
    if name == "trim":
        need(1)
        return to_str(values[0]).strip()
    if name == "converttojson":  # Azure writes it indented, two spaces
        need(1)
        return json.dumps(_plain(values[0]), indent=2)
    if name == "split":
        need(2)
        return to_str(values[0]).split(to_str(values[1]))
    raise ExpressionError(f"function {name}() is not supported")


NUMBER_TEXT = re.compile(r"\s*[+-]?(?:\d[\d,]*(?:\.\d*)?|\.\d+)\s*")
FORMAT_ITEM = re.compile(r"\{(\d+)(?::((?:[^{}]|\}\})*))?\}")
DATE_SPECIFIER = re.compile(r"\\.|yyyy|yy|MM|M|dd|d|HH|H|mm|m|ss|s|f{1,7}|K|zzz| +")


def format_text(pattern: str, args: list) -> str:
    """Azure's format(): {N} takes argument N, {N:specifiers} formats a date (pipeline.startTime) with .NET's
    custom specifiers, {{ and }} are literal braces; anything else is an error. Followed: the expression
    function Format of Azure's expression library (its v1 'Legacy/Format.cs', as carried by
    ChristopherHX/runner.server) and expressions.md "format"."""
    out, index = [], 0
    while index < len(pattern):
        if pattern.startswith("{{", index) or pattern.startswith("}}", index):
            out.append(pattern[index])
            index += 2
            continue
        char = pattern[index]
        if char == "}":
            raise ExpressionError(f"format(): the format string {pattern!r} is invalid (a lone '}}'; write '}}}}')")
        if char != "{":
            out.append(char)
            index += 1
            continue
        match = FORMAT_ITEM.match(pattern, index)
        if not match:
            raise ExpressionError(f"format(): the format string {pattern!r} is invalid (a lone '{{'; write '{{{{')")
        number, specifiers = int(match.group(1)), match.group(2)
        if number >= len(args):
            raise ExpressionError(f"format(): {{{number}}} has no argument in {pattern!r}")
        value = args[number]
        if specifiers:
            if not isinstance(value, datetime):
                raise ExpressionError(f"format(): the specifiers '{specifiers}' are only for a date "
                                      f"(pipeline.startTime), got {to_str(value)!r}")
            out.append(_format_date(value, specifiers.replace("}}", "}")))
        else:
            out.append(text(value))
        index = match.end()
    return "".join(out)


def _format_date(moment: datetime, specifiers: str) -> str:
    """.NET custom date and time format specifiers, those Azure's format() takes."""
    pieces, position = [], 0
    for match in DATE_SPECIFIER.finditer(specifiers):
        if match.start() != position:
            break
        position = match.end()
        spec = match.group(0)
        if spec.startswith("\\"):
            pieces.append(spec[1:])
        elif spec.startswith(" "):
            pieces.append(spec)
        elif spec.startswith("f"):
            pieces.append(f"{moment.microsecond:06d}0"[:len(spec)])
        elif spec == "K" or spec == "zzz":
            offset = moment.utcoffset()
            minutes = int(offset.total_seconds() // 60) if offset is not None else 0
            sign = "-" if minutes < 0 else "+"
            pieces.append(f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}")
        else:
            value = {"yyyy": moment.year, "yy": moment.year % 100, "MM": moment.month, "M": moment.month,
                     "dd": moment.day, "d": moment.day, "HH": moment.hour, "H": moment.hour, "mm": moment.minute,
                     "m": moment.minute, "ss": moment.second, "s": moment.second}[spec]
            pieces.append(f"{value:0{4 if spec == 'yyyy' else len(spec)}d}")
    if position != len(specifiers):
        raise ExpressionError(f"format(): the date specifiers '{specifiers}' are not valid (yyyy, yy, MM, M, dd, d, "
                              "HH, H, mm, m, ss, s, f..fffffff, K, zzz)")
    return "".join(pieces)


def _plain(value: Any) -> Any:
    """value as JSON data: a missing property is null."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, (Version, datetime)):
        return to_str(value)
    return None if isinstance(value, _Missing) else value


def run(text: str, ctx: Context) -> Any:
    """Parse and evaluate in one call."""
    return evaluate(parse(text), ctx)
