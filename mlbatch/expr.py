"""Expressions over table columns: derived columns, labels and filters of a schema.

One small language, parsed by the tokenizer and recursive-descent parser below (never by
Python's eval), type-checked when the schema loads and evaluated vectorized with
pyarrow.compute, so the feature job and anything that applies the schema later compute
the same values. Grammar, typing and null rules: docs/schema.md.

    tips > 0.2 * fare            where(dep_delay > 0, dep_delay, 0)
    sched_dep_time // 100        log1p(price)        hour(timestamp(time_hour))

Nulls propagate (a missing input gives a missing output); `and`/`or` follow SQL's
three-valued logic. Division by zero, `log`/`log1p`/`sqrt` outside their domain and an
unparseable timestamp give null, never an error or a NaN.
"""
from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping

import pyarrow as pa
import pyarrow.compute as pc

from mlbatch.expr_fns import FUNCTIONS, OPERATORS, ExprError, arrow_type

__all__ = [
    "FUNCTIONS",
    "TYPES",
    "Expr",
    "ExprError",
    "compile_expr",
    "evaluate",
    "quote_column",
]

TYPES = ("int64", "float64", "string", "bool", "timestamp")
KEYWORDS = {"and", "or", "not", "true", "false", "null"}
_TOKEN = re.compile(r"""
    (?P<ws>\s+)
  | (?P<float>(?:\d+\.\d*|\.\d+)(?:[eE][-+]?\d+)?|\d+[eE][-+]?\d+)
  | (?P<int>\d+)
  | (?P<str>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<quoted>`[^`]+`)
  | (?P<op>//|==|!=|<=|>=|[-+*/<>(),])
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
        self.tokens, self.i = tokenize(text), 0

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
            return Node("op", tok.pos, "not", args=(self.not_expr(),))
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
        return self._binary(self.unary, {"*": "mul", "/": "div", "//": "floordiv"})

    def unary(self) -> Node:
        if (tok := self.accept("-")) is not None:
            operand = self.unary()
            if operand.kind == "lit" and operand.type in ("int64", "float64"):
                return dataclasses.replace(operand, pos=tok.pos, value=-operand.value)
            return Node("op", tok.pos, "neg", args=(operand,))
        return self.primary()

    def primary(self) -> Node:
        tok = self.take()
        if tok.kind == "int":
            return Node("lit", tok.pos, value=int(tok.text), type="int64")
        if tok.kind == "float":
            return Node("lit", tok.pos, value=float(tok.text), type="float64")
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
            args = []
            if self.accept(")") is None:
                args.append(self.or_expr())
                while self.accept(",") is not None:
                    args.append(self.or_expr())
                self.expect(")")
            return Node("call", tok.pos, tok.text, args=tuple(args))
        if tok.kind == "op" and tok.text == "(":
            node = self.or_expr()
            self.expect(")")
            return node
        raise ExprError(f"unexpected {tok.text or 'end of expression'!r} at position {tok.pos}")


def parse(text: str) -> Node:
    """The untyped tree of `text`; ExprError names the position of a syntax error."""
    if not isinstance(text, str) or not text.strip():
        raise ExprError(f"an expression must be a non-empty string, got {text!r}")
    return _Parser(text).parse()


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
    return Expr(text=text, tree=tree, type=tree.type, columns=tuple(dict.fromkeys(_columns(tree))))


def _eval(node: Node, table: pa.Table | pa.RecordBatch):
    if node.kind == "lit":
        return pa.scalar(node.value, arrow_type(node.type))
    if node.kind == "col":
        col = table.column(node.name)
        return col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    spec = OPERATORS[node.name] if node.kind == "op" else FUNCTIONS[node.name]
    return spec.evaluate(node, [_eval(a, table) for a in node.args])


def evaluate(expr: Expr, table: pa.Table | pa.RecordBatch) -> pa.Array:
    """The expression's values for every row of `table`, as an Array of its type."""
    out = _eval(expr.tree, table)
    if isinstance(out, pa.Scalar):
        out = pa.repeat(out, table.num_rows)
    return pc.cast(out, arrow_type(expr.type))
