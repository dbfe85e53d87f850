"""Expressions over table columns: derived columns, labels and filters of a schema.

One small language, parsed by the tokenizer and recursive-descent parser below (never by
Python's eval), type-checked when the schema loads and evaluated vectorized with
pyarrow.compute, so the feature job and anything that applies the schema later compute
the same values. Grammar, typing and null rules: docs/schema.md.

    tips > 0.2 * fare            where(dep_delay > 0, dep_delay, 0)
    sched_dep_time // 100        log1p(price)        hour(timestamp(time_hour))

Nulls propagate (a missing input gives a missing output); `and`/`or` follow SQL's
three-valued logic. Division by zero and `log`/`log1p`/`sqrt` outside their domain give
null, never an error or a NaN. A value that cannot be read (a time that is not ISO 8601)
is a per-row problem with its reason (`evaluate_checked`), never a silent null. Time
functions: mlbatch/expr_time.py.
"""
from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable, Mapping

import pyarrow as pa
import pyarrow.compute as pc

from mlbatch import expr_fns
from mlbatch.config import shorten
from mlbatch.expr_fns import ExprError, arrow_type
from mlbatch.expr_time import TIME_FUNCTIONS, with_time

__all__ = [
    "FUNCTIONS",
    "TYPES",
    "Expr",
    "ExprError",
    "compile_expr",
    "evaluate",
    "evaluate_checked",
    "quote_column",
]

TYPES = ("int64", "float64", "string", "bool", "timestamp", "duration")
FUNCTIONS = {**expr_fns.FUNCTIONS, **TIME_FUNCTIONS}
OPERATORS = with_time(expr_fns.OPERATORS)
MAX_LENGTH = 10_000  # characters of an expression
MAX_NESTING = 40  # parentheses, calls, unary - and not, one inside the other
MAX_DEPTH = 200  # levels of the expression tree (a + b + ... nests to the left)
MAX_INT = 2**63 - 1
KEYWORDS = {"and", "or", "not", "true", "false", "null"}
_TOKEN = re.compile(r"""
    (?P<ws>\s+)
  | (?P<float>(?:\d+\.\d*|\.\d+)(?:[eE][-+]?\d+)?|\d+[eE][-+]?\d+)
  | (?P<int>\d+)
  | (?P<str>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<quoted>`[^`]+`)
  | (?P<op>//|==|!=|<=|>=|[-+*/%<>(),])
""", re.VERBOSE)
_ESCAPES = {"n": "\n", "t": "\t", "\\": "\\", "'": "'", '"': '"'}
_COMPARE = {"==": "eq", "!=": "ne", "<": "lt", "<=": "le", ">": "gt", ">=": "ge"}


@dataclasses.dataclass(frozen=True)
class Token:
    kind: str  # int | float | str | name | quoted | op | end
    text: str
    pos: int


@dataclasses.dataclass(frozen=True)
class Node:
    """An expression tree node: a literal (`value`), a column (`name`), an operator or a
    function call (`name`, `args`). `type` is set by the type checker."""
    kind: str  # lit | col | op | call
    pos: int
    name: str = ""
    value: object = None
    args: tuple[Node, ...] = ()
    type: str = ""


@dataclasses.dataclass(frozen=True)
class Expr:
    """A parsed and type-checked expression; `columns` are the columns it reads."""
    text: str
    tree: Node
    type: str
    columns: tuple[str, ...]


def quote_column(name: str) -> str:
    """`name` as the expression language writes a column: bare, or in backquotes."""
    if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name) and name not in KEYWORDS:
        return name
    if "`" in name:
        raise ExprError(f"column name {name!r} contains a backquote")
    return f"`{name}`"


def tokenize(text: str) -> list[Token]:
    tokens, pos = [], 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            raise ExprError(f"unexpected character {text[pos]!r} at position {pos}")
        if m.lastgroup != "ws":
            tokens.append(Token(m.lastgroup, m.group(), pos))
        pos = m.end()
    tokens.append(Token("end", "", len(text)))
    return tokens


def _unquote(tok: Token) -> str:
    body, out, i = tok.text[1:-1], [], 0
    while i < len(body):
        if body[i] == "\\":
            if body[i + 1] not in _ESCAPES:
                raise ExprError(f"unknown escape \\{body[i + 1]} in the string at "
                                f"position {tok.pos}")
            out.append(_ESCAPES[body[i + 1]])
            i += 2
        else:
            out.append(body[i])
            i += 1
    return "".join(out)


class _Parser:
    """Recursive descent, one method per precedence level (lowest first)."""

    def __init__(self, text: str):
        self.tokens, self.i, self.nesting = tokenize(text), 0, 0

    def nested(self, parse: Callable[[], Node], pos: int) -> Node:
        """parse() one level deeper; refuses nesting past MAX_NESTING (Python's stack)."""
        self.nesting += 1
        if self.nesting > MAX_NESTING:
            raise ExprError(f"nested deeper than {MAX_NESTING} levels at position {pos}")
        try:
            return parse()
        finally:
            self.nesting -= 1

    def peek(self) -> Token:
        return self.tokens[self.i]

    def take(self) -> Token:
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def accept(self, *texts: str) -> Token | None:
        tok = self.peek()
        if tok.kind in ("op", "name") and tok.text in texts:
            return self.take()
        return None

    def expect(self, text: str) -> Token:
        tok = self.accept(text)
        if tok is None:
            found = self.peek()
            raise ExprError(f"expected {text!r} at position {found.pos}, found "
                            f"{found.text or 'the end'!r}")
        return tok

    def parse(self) -> Node:
        node = self.or_expr()
        if self.peek().kind != "end":
            tok = self.peek()
            raise ExprError(f"unexpected {tok.text!r} at position {tok.pos}")
        return node

    def _binary(self, operand: Callable[[], Node], ops: Mapping[str, str]) -> Node:
        node = operand()
        while (tok := self.accept(*ops)) is not None:
            node = Node("op", tok.pos, ops[tok.text], args=(node, operand()))
        return node

    def or_expr(self) -> Node:
        return self._binary(self.and_expr, {"or": "or"})

    def and_expr(self) -> Node:
        return self._binary(self.not_expr, {"and": "and"})

    def not_expr(self) -> Node:
        if (tok := self.accept("not")) is not None:
            return Node("op", tok.pos, "not", args=(self.nested(self.not_expr, tok.pos),))
        return self.comparison()

    def comparison(self) -> Node:
        node = self.additive()
        if (tok := self.accept(*_COMPARE)) is not None:
            node = Node("op", tok.pos, _COMPARE[tok.text], args=(node, self.additive()))
            if (again := self.accept(*_COMPARE)) is not None:
                raise ExprError(f"chained comparison at position {again.pos}: "
                                f"write (a < b) and (b < c)")
        return node

    def additive(self) -> Node:
        return self._binary(self.term, {"+": "add", "-": "sub"})

    def term(self) -> Node:
        return self._binary(self.unary, {"*": "mul", "/": "div", "//": "floordiv", "%": "mod"})

    def unary(self) -> Node:
        if (tok := self.accept("-")) is not None:
            operand = self.nested(self.unary, tok.pos)
            if operand.kind == "lit" and operand.type in ("int64", "float64"):
                return dataclasses.replace(operand, pos=tok.pos, value=-operand.value)
            return Node("op", tok.pos, "neg", args=(operand,))
        return self.primary()

    def primary(self) -> Node:
        tok = self.take()
        if tok.kind == "int":
            if len(tok.text) > 19 or int(tok.text) > MAX_INT:
                raise ExprError(f"integer {tok.text[:30]}{'...' if len(tok.text) > 30 else ''}"
                                f" at position {tok.pos} does not fit in int64 (at most "
                                f"{MAX_INT})")
            return Node("lit", tok.pos, value=int(tok.text), type="int64")
        if tok.kind == "float":
            value = float(tok.text)
            if not math.isfinite(value):
                raise ExprError(f"number {tok.text[:30]} at position {tok.pos} is too large "
                                f"for float64")
            return Node("lit", tok.pos, value=value, type="float64")
        if tok.kind == "str":
            return Node("lit", tok.pos, value=_unquote(tok), type="string")
        if tok.kind == "quoted":
            return Node("col", tok.pos, tok.text[1:-1])
        if tok.kind == "name" and tok.text in ("true", "false"):
            return Node("lit", tok.pos, value=tok.text == "true", type="bool")
        if tok.kind == "name" and tok.text == "null":
            return Node("lit", tok.pos, value=None, type="null")
        if tok.kind == "name" and tok.text not in KEYWORDS:
            if self.accept("(") is None:
                return Node("col", tok.pos, tok.text)
            args = self.nested(self.arguments, tok.pos)
            return Node("call", tok.pos, tok.text, args=tuple(args))
        if tok.kind == "op" and tok.text == "(":
            node = self.nested(self.or_expr, tok.pos)
            self.expect(")")
            return node
        raise ExprError(f"unexpected {tok.text or 'end of expression'!r} at position {tok.pos}")


    def arguments(self) -> list[Node]:
        args = []
        if self.accept(")") is None:
            args.append(self.or_expr())
            while self.accept(",") is not None:
                args.append(self.or_expr())
            self.expect(")")
        return args


def _depth(node: Node) -> int:
    """Levels of the tree, without recursion (a long a + b + ... chain is deep)."""
    deepest, stack = 0, [(node, 1)]
    while stack:
        n, d = stack.pop()
        deepest = max(deepest, d)
        stack.extend((a, d + 1) for a in n.args)
    return deepest


def parse(text: str) -> Node:
    """The untyped tree of `text`; ExprError names the position of a syntax error."""
    if not isinstance(text, str) or not text.strip():
        raise ExprError(f"an expression must be a non-empty string, got {shorten(text)}")
    if len(text) > MAX_LENGTH:
        raise ExprError(f"an expression is at most {MAX_LENGTH:,} characters, got "
                        f"{len(text):,}")
    tree = _Parser(text).parse()
    if _depth(tree) > MAX_DEPTH:
        raise ExprError(f"more than {MAX_DEPTH} operations nest in one another: split it "
                        f"into derived columns")
    return tree


def _check(node: Node, columns: Mapping[str, str]) -> Node:
    if node.kind == "lit":
        return node
    if node.kind == "col":
        if node.name not in columns:
            raise ExprError(f"unknown column {node.name!r} at position {node.pos}; "
                            f"columns: {sorted(columns)}")
        return dataclasses.replace(node, type=columns[node.name])
    spec = OPERATORS[node.name] if node.kind == "op" else FUNCTIONS.get(node.name)
    if spec is None:
        raise ExprError(f"unknown function {node.name!r} at position {node.pos}; "
                        f"functions: {sorted(FUNCTIONS)}")
    args = tuple(_check(a, columns) for a in node.args)
    try:
        out = spec.result_type(args)
    except ExprError as e:
        what = spec.display or f"{node.name}()"
        raise ExprError(f"{what} at position {node.pos}: {e}") from None
    return dataclasses.replace(node, args=args, type=out)


def _columns(node: Node) -> list[str]:
    if node.kind == "col":
        return [node.name]
    return [c for a in node.args for c in _columns(a)]


def compile_expr(text: str, columns: Mapping[str, str]) -> Expr:
    """Parses and type-checks `text` against `columns` (name -> type, one of TYPES)."""
    tree = _check(parse(text), columns)
    if tree.type == "null":
        raise ExprError("the expression is always null")
    _check_constants(tree)
    return Expr(text=text, tree=tree, type=tree.type, columns=tuple(dict.fromkeys(_columns(tree))))


def _has_null(node: Node) -> bool:
    return node.kind == "lit" and node.value is None or any(_has_null(a) for a in node.args)


def _check_constants(node: Node) -> None:
    """Evaluates every part without columns once at load: overflow, or a null that no
    `null` literal asked for (`1 / 0`, `log(0)`, an unreadable time), is an error there."""
    if node.kind in ("lit", "col"):
        return
    if _columns(node):
        for a in node.args:
            _check_constants(a)
        return
    one = pa.table({"_": [0]})
    try:
        value, problems = _Run(one).value(node)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OverflowError) as e:
        raise ExprError(f"the constant part at position {node.pos} cannot be computed: "
                        f"{shorten(str(e))}") from None
    if problems:  # a constant part's problem is a scalar: the same for every row
        raise ExprError(problems[0][1].as_py())
    if not value.is_valid and not _has_null(node):
        raise ExprError(f"the constant part at position {node.pos} is null for every row "
                        f"(division by zero, or outside a function's domain)")


class _Run:
    """One evaluation over a table: values, and the rows whose value could not be computed
    with the reason (FnSpec.problems)."""

    def __init__(self, table: pa.Table | pa.RecordBatch):
        self.table, self.problems = table, []

    def value(self, node: Node):
        return self._eval(node), self.problems

    def _eval(self, node: Node):
        if node.kind == "lit":
            return pa.scalar(node.value, arrow_type(node.type))
        if node.kind == "col":
            col = self.table.column(node.name)
            return col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
        spec = OPERATORS[node.name] if node.kind == "op" else FUNCTIONS[node.name]
        args = [self._inexact(node, a, self._eval(a)) for a in node.args]
        constant = all(isinstance(a, pa.Scalar) for a in args)
        if constant:  # not every kernel takes scalars only: compute one row
            args = [pa.array([a.as_py()], a.type) for a in args]
        out = spec.evaluate(node, args)
        if spec.problems is not None:
            bad, reasons = spec.problems(node, args, out)
            if constant:
                bad = bad[0]
                reasons = reasons[0] if isinstance(reasons, pa.Array) else reasons
            if not isinstance(bad, pa.Scalar) or bad.as_py():
                self.problems.append((bad, reasons))
        return out[0] if constant and isinstance(out, pa.Array) else out


    def _inexact(self, node: Node, arg: Node, value):
        """`value` of int64 argument `arg`, null where it is past 2**53 and `node` makes
        it a float64 (not exact there: Arrow refuses the whole batch), with the reason."""
        if arg.type != "int64" or isinstance(value, pa.Scalar):
            return value
        floats = node.type == "float64" or node.name in _COMPARE.values() and any(
            a.type == "float64" for a in node.args)
        if not floats:
            return value
        bad = pc.greater(pc.abs_checked(pc.cast(value, pa.float64(), safe=False)), 2.0**53)
        if not pc.any(bad).as_py():
            return value
        self.problems.append((pc.fill_null(bad, False), pa.scalar(
            f"an int64 value at position {arg.pos} is past 2**53, not exact as float64")))
        return pc.if_else(bad, pa.scalar(None, pa.int64()), value)


def evaluate_checked(expr: Expr, table: pa.Table | pa.RecordBatch) -> tuple[pa.Array, pa.Array]:
    """(values, reasons): the expression's values for every row of `table`, and per row
    null or why its value could not be computed (a time that does not parse); such a
    row's value is null, and the caller must not use it silently."""
    out, problems = _Run(table).value(expr.tree)
    n = table.num_rows
    if isinstance(out, pa.Scalar):
        out = pa.repeat(out, n)
    reasons = pa.nulls(n, pa.string())
    for bad, why in problems:
        if isinstance(bad, pa.Scalar):
            bad, why = pa.repeat(bad, n), pa.repeat(why, n)
        reasons = pc.if_else(pc.and_(pc.is_null(reasons), pc.fill_null(bad, False)), why,
                             reasons)
    return pc.cast(out, arrow_type(expr.type)), reasons


def evaluate(expr: Expr, table: pa.Table | pa.RecordBatch) -> pa.Array:
    """The expression's values for every row of `table`, as an Array of its type (a row
    whose value cannot be computed is null: see evaluate_checked for why)."""
    return evaluate_checked(expr, table)[0]
