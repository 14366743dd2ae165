"""Plausible single bugs for a Python module: each mutant is one edit to one statement of a copy of the tree.

    python tools/mutation/plant.py ml_service/serving/auth.py [--operator boundary] [--sample 10 --seed 0]

The operators are the bugs a careful developer makes in a refactor (stdlib `ast` only):

  drop-call      an expression-statement call removed (`h.update(x)` -> `pass`); not `print`
  drop-assign    a write to a field removed (`record["status"] = s`, `self.done = True` -> `pass`)
  drop-with      a lock or context dropped (`with registry_lock(...):` -> `with nullcontext():`)
  guard-off      an `if` without `else` never taken (`if not ok:` -> `if False:`), a comprehension filter dropped
  drop-raise     a `raise` / `assert` inside a check or an `except` removed
  drop-return    an early `return` / `continue` / `break` inside an `if` removed
  boundary       `<` <-> `<=`, `>` <-> `>=`, `==` <-> `!=`, `in` <-> `not in`
  off-by-one     a `range()` end, a slice bound or a constant index moved by one (both ways)
  drop-call-value  a call replaced by its first argument (`mask(text)` -> `text`, `int(v)` -> `v`),
                 a method call by its receiver (`s.strip()` -> `s`), a call without arguments by `None`,
                 a parameter no longer cut off (`value.split(";")[0]` -> `value`)
  drop-kwarg     a keyword argument dropped (`sorted(v, reverse=True)` -> `sorted(v)`)
  flip-bool      `and` <-> `or`, a `not` dropped, `True` <-> `False` as an argument or a returned value
  swap-args      two neighbouring arguments of the same kind swapped (`compare(a, b)` -> `compare(b, a)`)
  precedence     the two sides of an `or` swapped, `{**a, **b}` -> `{**b, **a}` (which one wins flips)
  sibling-key    a string key or an attribute replaced by the nearest other one used with the same
                 object in the function (`run["end_time"]` -> `run["start_time"]`)
  arith          `+` <-> `-`, `*` <-> `/`, `//` -> `/` where a side is surely a number (a unit, a sign)
  file-mode      a private file mode written in octal made readable by all (`0o600` -> `0o644`, `0o700` -> `0o755`)

Enumeration is deterministic (file order, then line, column, operator); `sample()` takes a seeded sample
spread over the operators. Skipped: docstrings, annotations, decorators, f-string internals, `if
TYPE_CHECKING:` blocks, the `__main__` guard and lines marked `# pragma: no mutate` or `# pragma: no cover`.
"""
from __future__ import annotations

import argparse
import ast
import difflib
import hashlib
import random
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path

OPERATORS = ("drop-call", "drop-assign", "drop-with", "guard-off", "drop-raise", "drop-return", "boundary",
             "off-by-one", "drop-call-value", "drop-kwarg", "flip-bool", "swap-args", "precedence", "sibling-key",
             "arith", "file-mode")
BOUNDARY = {ast.Lt: "<=", ast.LtE: "<", ast.Gt: ">=", ast.GtE: ">", ast.Eq: "!=", ast.NotEq: "==",
            ast.In: "not in", ast.NotIn: "in"}
OPERATOR_TEXT = {ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=", ast.Eq: "==", ast.NotEq: "!=",
                 ast.In: "in", ast.NotIn: "not in"}
ARITH = {ast.Add: ("+", "-"), ast.Sub: ("-", "+"), ast.Mult: ("*", "/"), ast.Div: ("/", "*"), ast.FloorDiv: ("//", "/")}
# Calls whose loss only changes what is printed, and calls that are part of Python's plumbing.
QUIET_CALLS = {"print"}
PLUMBING_CALLS = {"super", "len", "isinstance", "issubclass", "type", "getattr", "hasattr", "setattr", "iter",
                  "next", "id", "vars", "locals", "globals", "__import__", "cast"}
# Methods that return a changed copy of their receiver: dropping one leaves the receiver.
TRANSFORMS = {"strip", "lstrip", "rstrip", "lower", "upper", "casefold", "replace", "removeprefix", "removesuffix",
              "resolve", "expanduser", "absolute", "copy", "values", "encode", "decode"}
SYMMETRIC_CALLS = {"min", "max", "set", "frozenset", "hmac.compare_digest", "math.isclose", "zip"}
ATOMS = (ast.Name, ast.Attribute, ast.Constant, ast.Subscript, ast.Call, ast.List, ast.Tuple, ast.Dict, ast.Set)
PRAGMAS = ("pragma: no mutate", "pragma: no cover")


@dataclass(frozen=True)
class Mutant:
    """One edit of one module: text[start:end] becomes replacement (lines line..end_line are touched)."""

    path: str
    line: int
    end_line: int
    start: int
    end: int
    operator: str
    original: str
    replacement: str

    @property
    def id(self) -> str:
        """A name stable while the module's text is unchanged."""
        digest = hashlib.sha1(f"{self.start}:{self.end}:{self.replacement}".encode()).hexdigest()[:6]
        return f"{self.path}:{self.line}:{self.operator}:{digest}"

    def apply(self, text: str) -> str:
        """The module's text with this mutant planted."""
        return text[:self.start] + self.replacement + text[self.end:]

    def diff(self, text: str) -> str:
        """The planted bug as a unified diff of the lines it touches."""
        before = text.splitlines(keepends=True)
        after = self.apply(text).splitlines(keepends=True)
        lines = difflib.unified_diff(before, after, f"a/{self.path}", f"b/{self.path}", n=1)
        return "".join(line if line.endswith("\n") else line + "\n" for line in lines)


@dataclass
class _Module:
    """A parsed module: text, tree, parents, and where each node's text starts and ends."""

    path: str
    text: str
    tree: ast.Module
    parents: dict = field(default_factory=dict)
    line_starts: list = field(default_factory=list)
    lines: list = field(default_factory=list)
    skipped: set = field(default_factory=set)
    modules: set = field(default_factory=set)

    def offset(self, lineno: int, col: int) -> int:
        """Absolute character offset of a (line, UTF-8 byte column) position."""
        line = self.lines[lineno - 1]
        return self.line_starts[lineno - 1] + len(line.encode()[:col].decode(errors="replace"))

    def span(self, node: ast.AST) -> tuple[int, int]:
        """The node's text as absolute character offsets."""
        return self.offset(node.lineno, node.col_offset), self.offset(node.end_lineno, node.end_col_offset)

    def segment(self, node: ast.AST) -> str:
        """The node's source text."""
        start, end = self.span(node)
        return self.text[start:end]


def parse(path: str, text: str) -> _Module:
    """Parse a module and note what is never mutated."""
    module = _Module(path, text, ast.parse(text))
    pieces = text.split("\n")  # ast counts lines at \n only (str.splitlines would also split at \f, \x1c, ...)
    module.lines = [piece + "\n" for piece in pieces[:-1]] + [pieces[-1]]
    position = 0
    for line in module.lines:
        module.line_starts.append(position)
        position += len(line)
    for parent in ast.walk(module.tree):
        for child in ast.iter_child_nodes(parent):
            module.parents[child] = parent
    for node in ast.walk(module.tree):
        if isinstance(node, ast.Import):
            module.modules |= {(alias.asname or alias.name.split(".")[0]) for alias in node.names}
        for banned in _never_mutated(node):
            module.skipped |= {id(inner) for inner in ast.walk(banned)}
    for number, line in enumerate(module.lines, 1):
        if any(pragma in line for pragma in PRAGMAS):
            for node in ast.walk(module.tree):
                if getattr(node, "lineno", None) == number:
                    module.skipped.add(id(node))
    return module


def _never_mutated(node: ast.AST) -> list[ast.AST]:
    """The parts of node that are never mutated: docstrings, annotations, decorators, f-strings, guards."""
    found: list[ast.AST] = []
    if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
        body = node.body
        if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
            found.append(body[0])
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        found += node.decorator_list
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        found += [node.returns] if node.returns else []
        arguments = node.args
        for arg in arguments.posonlyargs + arguments.args + arguments.kwonlyargs + [arguments.vararg, arguments.kwarg]:
            if arg is not None and arg.annotation is not None:
                found.append(arg.annotation)
    if isinstance(node, ast.AnnAssign):
        found.append(node.annotation)
    if isinstance(node, ast.JoinedStr):
        found.append(node)
    if isinstance(node, ast.If):
        test = ast.unparse(node.test)
        if test in ("TYPE_CHECKING", "typing.TYPE_CHECKING"):
            found.append(node)
        if test.replace("'", '"') == '__name__ == "__main__"':
            found.append(node)
    if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets):
        found.append(node)
    return found


def _name(node: ast.AST) -> str:
    """Dotted name of a call's function (`os.path.join`), or ''."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _name(node.value)
        return f"{base}.{node.attr}" if base else node.attr
    return ""


def _kind(node: ast.AST) -> str:
    """What an argument is, for swapping arguments of the same kind: a variable, a text, a number, or ''."""
    if isinstance(node, (ast.Name, ast.Attribute)):
        return "variable"
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return "text"
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
        return "number"
    return ""


def _number(node: ast.AST) -> bool:
    """Whether an operand is surely a number: a numeric literal, len(...), or arithmetic on one."""
    if isinstance(node, ast.Constant):
        return isinstance(node.value, (int, float)) and not isinstance(node.value, bool)
    if isinstance(node, ast.UnaryOp):
        return _number(node.operand)
    if isinstance(node, ast.Call):
        return _name(node.func) in ("len", "int", "float", "time.time", "time.monotonic", "round", "abs")
    if isinstance(node, ast.BinOp):
        return _number(node.left) or _number(node.right)
    return False


def _wrapped(module: _Module, node: ast.AST) -> str:
    """The node's text, in parentheses unless it is an atom."""
    text = module.segment(node)
    return text if isinstance(node, ATOMS) else f"({text})"


def _gap(module: _Module, left: ast.AST, right: ast.AST) -> tuple[int, int]:
    """The text between two neighbouring nodes (where an operator sits)."""
    return module.span(left)[1], module.span(right)[0]


class _Planter:
    """Walks one module and collects its mutants."""

    def __init__(self, module: _Module):
        self.m = module
        self.found: list[Mutant] = []

    def add(self, operator: str, start: int, end: int, replacement: str) -> None:
        text = self.m.text
        original = text[start:end]
        if original == replacement:
            return
        line = text.count("\n", 0, start) + 1
        end_line = text.count("\n", 0, max(start, end - 1)) + 1
        self.found.append(Mutant(self.m.path, line, end_line, start, end, operator, original, replacement))

    def replace(self, operator: str, node: ast.AST, replacement: str) -> None:
        self.add(operator, *self.m.span(node), replacement)

    def parent(self, node: ast.AST) -> ast.AST | None:
        return self.m.parents.get(node)

    def in_check(self, node: ast.stmt) -> bool:
        """Whether a statement sits directly in the body or else of an `if`, or in an `except`."""
        parent = self.parent(node)
        return isinstance(parent, (ast.If, ast.ExceptHandler))

    def scope(self, node: ast.AST) -> ast.AST:
        """The function (or module) a node belongs to."""
        current = node
        while current is not None and not isinstance(current, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Module)):
            current = self.parent(current)
        return current or self.m.tree

    def run(self) -> list[Mutant]:
        keys = self._keys()
        attributes = self._attributes()
        for node in ast.walk(self.m.tree):
            if id(node) in self.m.skipped or not hasattr(node, "lineno") and not isinstance(node, ast.comprehension):
                continue
            if isinstance(node, ast.stmt):
                self.statement(node)
            elif isinstance(node, ast.comprehension):
                for condition in node.ifs:
                    if id(condition) not in self.m.skipped:
                        self.replace("guard-off", condition, "True")
            else:
                self.expression(node, keys, attributes)
        return self.found

    # statements
    def statement(self, node: ast.stmt) -> None:
        if isinstance(node, ast.Expr) and isinstance(node.value, (ast.Call, ast.Await)):
            call = node.value.value if isinstance(node.value, ast.Await) else node.value
            if isinstance(call, ast.Call) and _name(call.func) not in QUIET_CALLS:
                self.replace("drop-call", node, "pass")
        elif isinstance(node, (ast.Assign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if isinstance(node, ast.AugAssign) or all(isinstance(t, (ast.Subscript, ast.Attribute)) for t in targets):
                self.replace("drop-assign", node, "pass")
        elif isinstance(node, (ast.With, ast.AsyncWith)):
            for item in node.items:
                if item.optional_vars is None and id(item.context_expr) not in self.m.skipped:
                    self.replace("drop-with", item.context_expr, '__import__("contextlib").nullcontext()')
        elif isinstance(node, ast.If) and not node.orelse and id(node.test) not in self.m.skipped:
            if not (len(node.body) == 1 and isinstance(node.body[0], ast.Pass)):
                self.replace("guard-off", node.test, "False")
        elif isinstance(node, (ast.Raise, ast.Assert)) and (self.in_check(node) or isinstance(node, ast.Assert)):
            self.replace("drop-raise", node, "pass")
        elif isinstance(node, (ast.Return, ast.Continue, ast.Break)) and isinstance(self.parent(node), ast.If):
            self.replace("drop-return", node, "pass")

    # expressions
    def expression(self, node: ast.AST, keys: dict, attributes: dict) -> None:
        if isinstance(node, ast.Compare):
            self.compare(node)
        elif isinstance(node, ast.BoolOp):
            self.boolean(node)
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            self.replace("flip-bool", node, _wrapped(self.m, node.operand))
        elif isinstance(node, ast.Constant) and isinstance(node.value, bool):
            parent = self.parent(node)
            if isinstance(parent, (ast.keyword, ast.Return, ast.Call)):
                self.replace("flip-bool", node, str(not node.value))
        elif isinstance(node, ast.Call):
            self.call(node)
        elif isinstance(node, ast.Subscript):
            self.subscript(node, keys)
        elif isinstance(node, ast.Attribute):
            self.attribute(node, attributes)
        elif isinstance(node, ast.Dict):
            self.dict_merge(node)
        elif isinstance(node, ast.BinOp) and type(node.op) in ARITH:
            self.arith(node)
        elif isinstance(node, ast.Constant) and type(node.value) is int:
            self.file_mode(node)

    def compare(self, node: ast.Compare) -> None:
        operands = [node.left, *node.comparators]
        for index, op in enumerate(node.ops):
            if type(op) not in BOUNDARY:
                continue
            start, end = _gap(self.m, operands[index], operands[index + 1])
            gap = self.m.text[start:end]
            old = OPERATOR_TEXT[type(op)]
            at = gap.find(old)
            if at < 0:
                continue
            self.add("boundary", start + at, start + at + len(old), BOUNDARY[type(op)])

    def boolean(self, node: ast.BoolOp) -> None:
        old, new = ("and", "or") if isinstance(node.op, ast.And) else ("or", "and")
        for left, right in zip(node.values, node.values[1:]):
            start, end = _gap(self.m, left, right)
            at = self.m.text.find(old, start, end)
            if at >= 0:
                self.add("flip-bool", at, at + len(old), new)
        if isinstance(node.op, ast.Or) and len(node.values) == 2:
            left, right = node.values
            if not any(isinstance(v, ast.Constant) and isinstance(v.value, bool) for v in node.values):
                start, end = self.m.span(node)
                self.add("precedence", start, end, f"{_wrapped(self.m, right)} or {_wrapped(self.m, left)}")

    def call(self, node: ast.Call) -> None:
        name = _name(node.func)
        parent = self.parent(node)
        if name in ("range",) and 1 <= len(node.args) <= 3:
            end = node.args[0] if len(node.args) == 1 else node.args[1]
            self.off_by_one(end)
        if name.split(".")[-1] in PLUMBING_CALLS or name in QUIET_CALLS:
            return
        for keyword in node.keywords:
            if keyword.arg is not None:
                self.keyword_drop(node, keyword)
        self.swap_arguments(node, name)
        if isinstance(parent, (ast.Expr, ast.Raise, ast.withitem)) or isinstance(node.func, ast.Call):
            return
        positional = [a for a in node.args if not isinstance(a, ast.Starred)]
        receiver = node.func.value if isinstance(node.func, ast.Attribute) else None
        if receiver is not None and not (isinstance(receiver, ast.Name) and receiver.id in self.m.modules):
            # a method: `s.strip()` -> `s`, `v.lower()` -> `v`, `text.replace(a, b)` -> `text`
            if not isinstance(receiver, ast.Constant) and (not node.args and not node.keywords or
                                                           node.func.attr in TRANSFORMS):
                self.replace("drop-call-value", node, _wrapped(self.m, receiver))
        elif len(positional) == 1 and len(node.args) == 1:
            # a function of one value: `mask(text)` -> `text`, `int(v)` -> `v`, `sorted(runs, key=k)` -> `runs`
            self.replace("drop-call-value", node, _wrapped(self.m, positional[0]))
        elif not node.args and not node.keywords and isinstance(node.func, ast.Name):
            self.replace("drop-call-value", node, "None")

    def keyword_drop(self, node: ast.Call, keyword: ast.keyword) -> None:
        items = sorted([*node.args, *node.keywords], key=lambda item: self.m.span(item))
        index = items.index(keyword)
        start, end = self.m.span(keyword)
        if index > 0:  # take the comma before it
            start = self.m.span(items[index - 1])[1]
        elif len(items) > 1:  # first item: take the comma after it
            end = self.m.span(items[1])[0]
        self.add("drop-kwarg", start, end, "")

    def swap_arguments(self, node: ast.Call, name: str) -> None:
        if name in SYMMETRIC_CALLS:
            return
        for left, right in zip(node.args, node.args[1:]):
            if _kind(left) == "variable" == _kind(right) and self.m.segment(left) != self.m.segment(right):
                self.add_swap(left, right)
        for left, right in zip(node.keywords, node.keywords[1:]):
            if left.arg and right.arg and _kind(left.value) == "variable" == _kind(right.value):
                if self.m.segment(left.value) != self.m.segment(right.value):
                    self.add_swap(left.value, right.value)

    def add_swap(self, left: ast.AST, right: ast.AST) -> None:
        start, _ = self.m.span(left)
        _, end = self.m.span(right)
        gap = self.m.text[self.m.span(left)[1]:self.m.span(right)[0]]
        self.add("swap-args", start, end, self.m.segment(right) + gap + self.m.segment(left))

    def off_by_one(self, node: ast.AST | None) -> None:
        if node is None or id(node) in self.m.skipped:
            return
        if isinstance(node, ast.Constant) and isinstance(node.value, int) and not isinstance(node.value, bool):
            for delta in (1, -1):
                self.replace("off-by-one", node, str(node.value + delta))
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub) and \
                isinstance(node.operand, ast.Constant) and isinstance(node.operand.value, int):
            for delta in (1, -1):
                self.replace("off-by-one", node, str(-node.operand.value + delta))
        else:
            text = _wrapped(self.m, node)
            for sign in ("+", "-"):
                self.replace("off-by-one", node, f"{text} {sign} 1")

    def file_mode(self, node: ast.Constant) -> None:
        text = self.m.segment(node).lower()
        if text.startswith("0o") and 0o400 <= node.value <= 0o777 and not node.value & 0o077:
            readable = node.value | (0o055 if node.value & 0o100 else 0o044)
            self.replace("file-mode", node, f"0o{readable:o}")

    def subscript(self, node: ast.Subscript, keys: dict) -> None:
        index = node.slice
        value = node.value
        if isinstance(value, ast.Call) and isinstance(value.func, ast.Attribute) and isinstance(index, ast.Constant) \
                and value.func.attr in ("split", "rsplit", "partition", "rpartition") and \
                not isinstance(self.parent(node), ast.Expr):
            self.replace("drop-call-value", node, _wrapped(self.m, value.func.value))
        if isinstance(index, ast.Slice):
            self.off_by_one(index.lower)
            self.off_by_one(index.upper)
        elif isinstance(index, ast.Constant) and isinstance(index.value, int) and not isinstance(index.value, bool):
            self.off_by_one(index)
        elif isinstance(index, ast.UnaryOp) and isinstance(index.operand, ast.Constant):
            self.off_by_one(index)
        elif isinstance(index, ast.Constant) and isinstance(index.value, str):
            self.sibling(index, keys.get(id(self.scope(node)), []))

    def attribute(self, node: ast.Attribute, attributes: dict) -> None:
        if not isinstance(node.ctx, ast.Load) or isinstance(self.parent(node), ast.Call) and \
                self.parent(node).func is node:
            return
        base = node.value
        if isinstance(base, ast.Name) and base.id in self.m.modules:
            return
        siblings = attributes.get((id(self.scope(node)), ast.dump(base)), [])
        choices = [(abs(line - node.lineno), attr) for line, attr in siblings if attr != node.attr]
        if choices:
            attr = min(choices)[1]
            _, end = self.m.span(node)
            self.add("sibling-key", end - len(node.attr), end, attr)

    def sibling(self, key: ast.Constant, used: list) -> None:
        choices = [(abs(line - key.lineno), text) for line, text in used if text != key.value]
        if choices:
            text, quote = min(choices)[1], self.m.segment(key)[:1]
            usable = quote in "'\"" and quote not in text and "\\" not in text
            self.replace("sibling-key", key, f"{quote}{text}{quote}" if usable else repr(text))

    def dict_merge(self, node: ast.Dict) -> None:
        spread = [v for k, v in zip(node.keys, node.values) if k is None]
        if len(spread) == 2 and len(node.keys) == 2:
            left, right = spread
            start, end = self.m.span(left)[0], self.m.span(right)[1]
            gap = self.m.text[self.m.span(left)[1]:self.m.span(right)[0]]
            self.add("precedence", start, end, self.m.segment(right) + gap + self.m.segment(left))

    def arith(self, node: ast.BinOp) -> None:
        # Only arithmetic that is surely on numbers (a number or len() on one side): `root / name` is a path,
        # `a + b` may be text, and swapping those only raises a TypeError.
        if not any(_number(side) for side in (node.left, node.right)):
            return
        old, new = ARITH[type(node.op)]
        start, end = _gap(self.m, node.left, node.right)
        at = self.m.text.find(old, start, end)
        if at >= 0:
            self.add("arith", at, at + len(old), new)

    # what is used nearby, for sibling-key
    def _keys(self) -> dict:
        """scope -> [(line, string key)] of subscripts and .get/.pop/.setdefault calls."""
        found: dict = {}
        for node in ast.walk(self.m.tree):
            key = None
            if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant):
                key = node.slice
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.args and \
                    node.func.attr in ("get", "pop", "setdefault") and isinstance(node.args[0], ast.Constant):
                key = node.args[0]
            if key is not None and isinstance(key.value, str):
                found.setdefault(id(self.scope(node)), []).append((key.lineno, key.value))
        return found

    def _attributes(self) -> dict:
        """(scope, base) -> [(line, attribute)] of attributes read (not called) on the same object."""
        found: dict = {}
        for node in ast.walk(self.m.tree):
            if isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Load):
                parent = self.parent(node)
                if isinstance(parent, ast.Call) and parent.func is node:
                    continue
                found.setdefault((id(self.scope(node)), ast.dump(node.value)), []).append((node.lineno, node.attr))
        return found


def candidates(path: str, text: str, operators: tuple[str, ...] = OPERATORS) -> list[Mutant]:
    """Every edit the operators make in one module, in a stable order (whether each compiles is not checked)."""
    seen: set[tuple[int, int, str]] = set()
    found = []
    for mutant in sorted(_Planter(parse(path, text)).run(), key=lambda m: (m.start, m.end, m.operator, m.replacement)):
        if mutant.operator in operators and (mutant.start, mutant.end, mutant.replacement) not in seen:
            seen.add((mutant.start, mutant.end, mutant.replacement))
            found.append(mutant)
    return found


def compiles(mutant: Mutant, text: str) -> bool:
    """Whether the module still compiles with the mutant planted."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            compile(mutant.apply(text), mutant.path, "exec", dont_inherit=True)
    except (SyntaxError, ValueError):
        return False
    return True


def mutants(path: str, text: str, operators: tuple[str, ...] = OPERATORS) -> list[Mutant]:
    """Every mutant of one module that compiles, in a stable order."""
    return [m for m in candidates(path, text, operators) if compiles(m, text)]


def sample(found: list[Mutant], size: int | None, seed: int | str, text: str | None = None) -> list[Mutant]:
    """A seeded sample of one module's mutants, taken in turn from each operator (all of them when size is None).

    With the module's text, candidates that do not compile are skipped (only the ones drawn are compiled)."""
    def usable(mutant: Mutant) -> bool:
        return text is None or compiles(mutant, text)

    if size is None or len(found) <= size:
        return [m for m in found if usable(m)]
    rng = random.Random(f"{seed}:{found[0].path}")
    by_operator: dict[str, list[Mutant]] = {}
    for mutant in found:
        by_operator.setdefault(mutant.operator, []).append(mutant)
    for group in by_operator.values():
        rng.shuffle(group)
    picked: list[Mutant] = []
    while len(picked) < size and any(by_operator.values()):
        for operator in sorted(by_operator):
            if by_operator[operator] and len(picked) < size:
                mutant = by_operator[operator].pop()
                if usable(mutant):
                    picked.append(mutant)
    order = {id(m): i for i, m in enumerate(found)}
    return sorted(picked, key=lambda m: order[id(m)])


def main(argv: list[str] | None = None) -> int:
    """List a module's mutants as diffs (or counts per operator)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("files", nargs="+")
    parser.add_argument("--operator", action="append", choices=OPERATORS, help="only this operator (repeatable)")
    parser.add_argument("--sample", type=int, help="a seeded sample of this many mutants per module")
    parser.add_argument("--seed", default="0")
    parser.add_argument("--count", action="store_true", help="counts per operator only")
    args = parser.parse_args(argv)
    totals: dict[str, int] = {}
    for name in args.files:
        text = Path(name).read_text()
        found = sample(candidates(name, text, tuple(args.operator or OPERATORS)), args.sample, args.seed, text)
        for mutant in found:
            totals[mutant.operator] = totals.get(mutant.operator, 0) + 1
            if not args.count:
                print(f"# {mutant.id}\n{mutant.diff(text)}")
    for operator in OPERATORS:
        if operator in totals:
            print(f"{operator:16} {totals[operator]}", file=sys.stderr)
    print(f"{'all':16} {sum(totals.values())}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
