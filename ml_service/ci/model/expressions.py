"""Azure Pipelines expressions: literals, functions, property and index access.

Used for conditions, ${{ }} template expressions and $[ ] runtime expressions, with Azure's rules:
string comparisons ignore case, the right operand is converted to the left one's type, an empty
string is false and any other string is true, and status functions read the job's state.
"""
from __future__ import annotations

import functools
import json
import re
from typing import Any, Callable

from ml_service.errors import MLOpsError

TOKEN = re.compile(r"""
    \s*(?:
      (?P<number>-?\d+(?:\.\d+)?(?![\w.]))
    | '(?P<string>(?:[^']|'')*)'
    | (?P<name>[A-Za-z_][\w\-]*)
    | (?P<punct>[()\[\],.])
    )""", re.VERBOSE)


class ExpressionError(MLOpsError):
    """An expression cannot be parsed or evaluated; the message quotes it."""


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
        if kind in ("number", "string"):
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
    return True


def as_bool(value: Any) -> bool:
    """A YAML boolean setting written either way (true or 'true', yes, on ...), as Azure reads it."""
    if isinstance(value, str):
        return value.strip().lower() in ("true", "yes", "y", "on")
    return to_bool(value)


def to_str(value: Any) -> str:
    """Azure string conversion (booleans as True / False, whole numbers without .0)."""
    if value is None or isinstance(value, _Missing):
        return ""
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _to_number(value: Any) -> float | None:
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, (int, float)):
        return float(value)
    if value is None or isinstance(value, _Missing):
        return 0.0
    try:
        return float(str(value).strip())
    except ValueError:
        return None


def _coerce_bool(value: Any) -> bool:
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    return to_bool(value)


def equals(left: Any, right: Any) -> bool:
    """Azure eq(): convert right to left's type; strings compare ignoring case."""
    if isinstance(left, bool):
        return left == _coerce_bool(right)
    if isinstance(left, (int, float)):
        number = _to_number(right)
        return number is not None and float(left) == number
    if left is None or isinstance(left, _Missing):
        return right is None or isinstance(right, _Missing) or right == ""
    return to_str(left).lower() == to_str(right).lower()


def _compare(left, right) -> int:
    if isinstance(left, (int, float)) and not isinstance(left, bool):
        number = _to_number(right)
        if number is None:
            raise ExpressionError(f"cannot compare {left!r} with {right!r}")
        return (left > number) - (left < number)
    a, b = to_str(left).lower(), to_str(right).lower()
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
        return any(equals(v, values[1]) for v in items)
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
    if name == "join":
        need(2)
        items = values[1] if isinstance(values[1], list) else [values[1]]
        return to_str(values[0]).join(to_str(v) for v in items)
    if name == "format":
        need(1)
        text = to_str(values[0])
        for i, v in enumerate(values[1:]):
            text = text.replace("{%d}" % i, to_str(v))
        return text
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


def _plain(value: Any) -> Any:
    """value as JSON data: a missing property is null."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return None if isinstance(value, _Missing) else value


def run(text: str, ctx: Context) -> Any:
    """Parse and evaluate in one call."""
    return evaluate(parse(text), ctx)
