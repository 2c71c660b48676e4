"""Expression evaluation over the parser's AST.

`compile_expression` type-checks an expression against a row layout once and returns
a closure evaluating it on a row (a list of column values). SQL NULL semantics and
Java numeric behaviour (32/64-bit wrap-around, truncating division) follow ksqlDB.
Adding an operator or function = one branch here (or one entry in `SCALAR_FUNCTIONS`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from cart_pipeline.engine.errors import KsqlStatementError, unsupported
from cart_pipeline.engine.sql import ast
from cart_pipeline.engine.types import BIGINT, BOOLEAN, DOUBLE, INTEGER, STRING, SqlType

Row = Sequence[object]
Evaluator = Callable[[Row], object]

PSEUDO_COLUMNS: tuple[tuple[str, SqlType], ...] = (
    ("ROWTIME", BIGINT),
    ("ROWPARTITION", INTEGER),
    ("ROWOFFSET", BIGINT),
)
NULL_TYPE = SqlType("NULL")

#: ksqlDB's ComparisonExpression.Type names, used in its messages.
COMPARISON_NAMES = {
    "=": "EQUAL",
    "<>": "NOT_EQUAL",
    "<": "LESS_THAN",
    "<=": "LESS_THAN_OR_EQUAL",
    ">": "GREATER_THAN",
    ">=": "GREATER_THAN_OR_EQUAL",
    "IS DISTINCT FROM": "IS_DISTINCT_FROM",
    "IS NOT DISTINCT FROM": "IS_NOT_DISTINCT_FROM",
}


@dataclass(frozen=True)
class Scope:
    """Names visible to an expression: column name -> (row index, type).

    `sources` are the names (and aliases) a column may be qualified with.
    """

    columns: dict[str, tuple[int, SqlType]]
    sources: frozenset[str]

    def resolve(self, ref: ast.ColumnRef, clause: str) -> tuple[int, SqlType]:
        if ref.source is not None and ref.source not in self.sources:
            raise KsqlStatementError(f"'{ref.source}' is not a valid stream/table name or alias.")
        hit = self.columns.get(ref.name)
        if hit is None:
            raise KsqlStatementError(f"{clause} column '{ref.name}' cannot be resolved.")
        return hit


@dataclass(frozen=True)
class Compiled:
    fn: Evaluator
    type: SqlType


def format_expression(expr: ast.Expression) -> str:
    """ksqlDB's rendering of an expression in error messages, e.g. `(ID = '10')`."""
    match expr:
        case ast.ColumnRef(name=name, source=source):
            return f"{source}.{name}" if source else name
        case ast.StringLiteral(value=value):
            return "'" + value.replace("'", "''") + "'"
        case ast.NullLiteral():
            return "null"
        case ast.BooleanLiteral(value=value):
            return "true" if value else "false"
        case ast.IntegerLiteral(value=v) | ast.BigIntLiteral(value=v):
            return str(v)
        case ast.DecimalLiteral(value=v):
            return str(v)
        case ast.DoubleLiteral(value=v):
            return repr(v).upper()
        case ast.ArithmeticBinary(operator=op, left=left, right=right):
            return f"({format_expression(left)} {op} {format_expression(right)})"
        case ast.Comparison(operator=op, left=left, right=right):
            return f"({format_expression(left)} {op} {format_expression(right)})"
        case ast.LogicalBinary(operator=op, left=left, right=right):
            return f"({format_expression(left)} {op} {format_expression(right)})"
        case ast.ArithmeticUnary(operator=op, operand=operand):
            return f"{op}{format_expression(operand)}"
        case ast.Not(operand=operand):
            return f"(NOT {format_expression(operand)})"
        case ast.IsNull(operand=operand, negated=negated):
            return f"({format_expression(operand)} IS {'NOT ' if negated else ''}NULL)"
        case ast.FunctionCall(name=name, args=args, star=star):
            inner = "*" if star else ", ".join(format_expression(a) for a in args)
            return f"{name}({inner})"
        case _:
            return type(expr).__name__


def _wrap(bits: int) -> Callable[[int], int]:
    half = 1 << (bits - 1)
    full = 1 << bits

    def wrap(v: int) -> int:
        return ((v + half) % full) - half

    return wrap


_WRAP = {"INTEGER": _wrap(32), "BIGINT": _wrap(64)}


def _numeric_result(left: SqlType, right: SqlType) -> SqlType:
    order = ("INTEGER", "BIGINT", "DOUBLE")
    if left.base == "NULL":
        return right
    if right.base == "NULL":
        return left
    return SqlType(order[max(order.index(left.base), order.index(right.base))])


def _java_div(a: int, b: int) -> int:
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b >= 0) else -q


def _java_mod(a: int, b: int) -> int:
    return int(math.fmod(a, b))


def _arith(op: str, result: SqlType) -> Callable[[object, object], object]:
    if result.base == "STRING":
        if op != "+":
            raise KsqlStatementError(f"Unsupported arithmetic operator {op} on STRING")
        return lambda a, b: str(a) + str(b)
    if result.base == "DOUBLE":

        def dbl(a: object, b: object) -> object:
            x, y = float(a), float(b)  # type: ignore[arg-type]
            if op == "+":
                return x + y
            if op == "-":
                return x - y
            if op == "*":
                return x * y
            if op == "/":
                return x / y if y != 0 else (math.copysign(math.inf, x) if x else math.nan)
            return math.fmod(x, y) if y != 0 else math.nan

        return dbl
    wrap = _WRAP[result.base]

    def integral(a: object, b: object) -> object:
        x, y = int(a), int(b)  # type: ignore[call-overload]
        if op == "+":
            return wrap(x + y)
        if op == "-":
            return wrap(x - y)
        if op == "*":
            return wrap(x * y)
        if y == 0:
            return None  # ksqlDB yields NULL (and logs) for integral division by zero
        return wrap(_java_div(x, y)) if op == "/" else _java_mod(x, y)

    return integral


def _comparable(left: SqlType, right: SqlType) -> bool:
    if NULL_TYPE in (left, right):
        return True
    if left.is_numeric and right.is_numeric:
        return True
    return left.base == right.base


def _constant(value: object, sql_type: SqlType) -> Compiled:
    return Compiled(lambda row: value, sql_type)


def _getter(index: int) -> Evaluator:
    return lambda row: row[index]


def compile_expression(expr: ast.Expression, scope: Scope, clause: str = "SELECT") -> Compiled:
    """Type-check `expr` in `scope` and return its evaluator (raises ksqlDB's errors)."""
    match expr:
        case ast.NullLiteral():
            return _constant(None, NULL_TYPE)
        case ast.BooleanLiteral(value=b):
            return _constant(b, BOOLEAN)
        case ast.IntegerLiteral(value=i):
            return _constant(i, INTEGER)
        case ast.BigIntLiteral(value=i):
            return _constant(i, BIGINT)
        case ast.DoubleLiteral(value=d):
            return _constant(d, DOUBLE)
        case ast.StringLiteral(value=text):
            return _constant(text, STRING)
        case ast.DecimalLiteral():
            raise unsupported(f"DECIMAL literal {format_expression(expr)}")
        case ast.ColumnRef():
            index, sql_type = scope.resolve(expr, clause)
            return Compiled(_getter(index), sql_type)
        case ast.ArithmeticUnary(operator=op, operand=operand):
            inner = compile_expression(operand, scope, clause)
            if op == "+":
                return inner
            neg = _WRAP.get(inner.type.base, lambda v: v)
            f = inner.fn

            def negate(row: Row) -> object:
                v = f(row)
                return None if v is None else neg(-v)  # type: ignore[operator]

            return Compiled(negate, inner.type)
        case ast.ArithmeticBinary(operator=op, left=left, right=right):
            return _compile_arith(expr, op, left, right, scope, clause)
        case ast.Comparison(operator=op, left=left, right=right):
            return _compile_comparison(expr, op, left, right, scope, clause)
        case ast.LogicalBinary(operator=op, left=left, right=right):
            lf = compile_expression(left, scope, clause).fn
            rf = compile_expression(right, scope, clause).fn
            if op == "AND":

                def and_(row: Row) -> object:
                    a = lf(row)
                    if a is False:
                        return False
                    b = rf(row)
                    if b is False:
                        return False
                    return None if a is None or b is None else True

                return Compiled(and_, BOOLEAN)

            def or_(row: Row) -> object:
                a = lf(row)
                if a is True:
                    return True
                b = rf(row)
                if b is True:
                    return True
                return None if a is None or b is None else False

            return Compiled(or_, BOOLEAN)
        case ast.Not(operand=operand):
            f = compile_expression(operand, scope, clause).fn
            return Compiled(lambda row: None if (v := f(row)) is None else not v, BOOLEAN)
        case ast.IsNull(operand=operand, negated=negated):
            f = compile_expression(operand, scope, clause).fn
            if negated:
                return Compiled(lambda row: f(row) is not None, BOOLEAN)
            return Compiled(lambda row: f(row) is None, BOOLEAN)
        case ast.Between(operand=operand, lower=lower, upper=upper):
            oc = compile_expression(operand, scope, clause)
            bounds = [compile_expression(b, scope, clause) for b in (lower, upper)]
            for bound, bc, op_name in zip(
                (lower, upper),
                bounds,
                ("GREATER_THAN_OR_EQUAL", "LESS_THAN_OR_EQUAL"),
                strict=True,
            ):
                if not _comparable(oc.type, bc.type):
                    raise KsqlStatementError(
                        f"Invalid expression: Cannot compare {format_expression(operand)} "
                        f"({oc.type}) to {format_expression(bound)} ({bc.type}) with {op_name}"
                    )
            o, lo, hi = oc.fn, bounds[0].fn, bounds[1].fn

            def between(row: Row) -> object:
                v, a, b = o(row), lo(row), hi(row)
                if v is None or a is None or b is None:
                    return None
                return a <= v <= b  # type: ignore[operator]

            return Compiled(between, BOOLEAN)
        case ast.InList(operand=operand, values=values):
            oc = compile_expression(operand, scope, clause)
            o = oc.fn
            compiled_items = [compile_expression(v, scope, clause) for v in values]
            for v, item in zip(values, compiled_items, strict=True):
                if not _comparable(oc.type, item.type):
                    if isinstance(operand, ast.ColumnRef):
                        raise KsqlStatementError(
                            f"{format_expression(v)} can not be converted to the type of the "
                            f"key column: {operand.name} {oc.type} KEY"
                        )
                    raise KsqlStatementError(
                        f"Cannot compare {format_expression(operand)} ({oc.type}) to "
                        f"{format_expression(v)} ({item.type}) with IN."
                    )
            items = [item.fn for item in compiled_items]

            def in_list(row: Row) -> object:
                v = o(row)
                if v is None:
                    return None
                return any(v == f(row) for f in items)

            return Compiled(in_list, BOOLEAN)
        case ast.Like(operand=operand, pattern=pattern, escape=escape):
            return _compile_like(operand, pattern, escape, scope, clause)
        case ast.FunctionCall(name=name, args=args):
            from cart_pipeline.engine.runtime import aggregates, functions

            if aggregates.is_aggregate(name):
                raise unsupported(f"aggregate function {name} in this position")
            compiled_args = [compile_expression(a, scope, clause) for a in args]
            result_type, impl = functions.bind(name, [c.type for c in compiled_args])
            fns = [c.fn for c in compiled_args]
            return Compiled(lambda row: impl([f(row) for f in fns]), result_type)
        case ast.Cast(operand=operand, type=target):
            from cart_pipeline.engine.runtime.casts import bind_cast

            inner = compile_expression(operand, scope, clause)
            cast_type, convert = bind_cast(inner.type, target)
            if convert is None:
                return Compiled(inner.fn, cast_type)
            fi, conv = inner.fn, convert
            return Compiled(lambda row: None if (v := fi(row)) is None else conv(v), cast_type)
        case _:
            raise unsupported(f"expression {type(expr).__name__} ({format_expression(expr)})")


def _like_regex(pattern: str, escape: str | None) -> re.Pattern[str]:
    out, i = [], 0
    while i < len(pattern):
        c = pattern[i]
        if escape is not None and c == escape and i + 1 < len(pattern):
            out.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        out.append(".*" if c == "%" else "." if c == "_" else re.escape(c))
        i += 1
    return re.compile("".join(out), re.DOTALL)


def _compile_like(
    operand: ast.Expression,
    pattern: ast.Expression,
    escape: str | None,
    scope: Scope,
    clause: str,
) -> Compiled:
    oc = compile_expression(operand, scope, clause)
    pc = compile_expression(pattern, scope, clause)
    if oc.type.base not in ("STRING", "NULL") or pc.type.base not in ("STRING", "NULL"):
        raise unsupported("LIKE over non-STRING operands")
    o, p = oc.fn, pc.fn
    fixed = isinstance(pattern, ast.StringLiteral)
    regex = _like_regex(pattern.value, escape) if isinstance(pattern, ast.StringLiteral) else None

    def like(row: Row) -> object:
        v = o(row)
        pat = regex if fixed else None
        if pat is None:
            text = p(row)
            if text is None:
                return None
            pat = _like_regex(str(text), escape)
        if v is None:
            return None
        return pat.fullmatch(str(v)) is not None

    return Compiled(like, BOOLEAN)


def _compile_arith(
    expr: ast.Expression,
    op: str,
    left: ast.Expression,
    right: ast.Expression,
    scope: Scope,
    clause: str,
) -> Compiled:
    lc = compile_expression(left, scope, clause)
    rc = compile_expression(right, scope, clause)
    if lc.type.base == "STRING" and rc.type.base == "STRING" and op == "+":
        result = STRING
    elif (
        (lc.type.is_numeric or lc.type == NULL_TYPE)
        and (rc.type.is_numeric or rc.type == NULL_TYPE)
        and NULL_TYPE not in (lc.type, rc.type)
    ):
        result = _numeric_result(lc.type, rc.type)
    else:
        raise KsqlStatementError(
            f"Error processing expression: {format_expression(expr)}. Arithmetic on types "
            f"{_type_text(lc.type)} and {_type_text(rc.type)} are not supported."
        )
    fn = _arith(op, result)
    lf, rf = lc.fn, rc.fn

    def arith(row: Row) -> object:
        a, b = lf(row), rf(row)
        if a is None or b is None:
            return None
        return fn(a, b)

    return Compiled(arith, result)


def _type_text(t: SqlType) -> str:
    return "null" if t == NULL_TYPE else str(t)


def _compile_comparison(
    expr: ast.Expression,
    op: str,
    left: ast.Expression,
    right: ast.Expression,
    scope: Scope,
    clause: str,
) -> Compiled:
    lc = compile_expression(left, scope, clause)
    rc = compile_expression(right, scope, clause)
    distinct = op in ("IS DISTINCT FROM", "IS NOT DISTINCT FROM")
    if not distinct and NULL_TYPE in (lc.type, rc.type):
        raise KsqlStatementError(
            f"Comparison with NULL not supported: {_type_text(lc.type).upper()} {op} "
            f"{_type_text(rc.type).upper()}\nUse 'IS NULL' or 'IS NOT NULL' instead."
        )
    if not _comparable(lc.type, rc.type):
        raise KsqlStatementError(
            f"Cannot compare {format_expression(left)} ({lc.type}) to "
            f"{format_expression(right)} ({rc.type}) with {COMPARISON_NAMES[op]}."
        )
    lf, rf = lc.fn, rc.fn
    if distinct:
        same = op == "IS NOT DISTINCT FROM"
        return Compiled(lambda row: (lf(row) == rf(row)) == same, BOOLEAN)
    cmp: Callable[[object, object], bool] = {
        "=": lambda a, b: a == b,
        "<>": lambda a, b: a != b,
        "<": lambda a, b: a < b,  # type: ignore[operator]
        "<=": lambda a, b: a <= b,  # type: ignore[operator]
        ">": lambda a, b: a > b,  # type: ignore[operator]
        ">=": lambda a, b: a >= b,  # type: ignore[operator]
    }[op]

    def compare(row: Row) -> object:
        a, b = lf(row), rf(row)
        if a is None or b is None:
            return False  # ksqlDB's generated comparison is false, not NULL
        return cmp(a, b)

    return Compiled(compare, BOOLEAN)


def contains_aggregate(expr: ast.Expression, is_aggregate: Callable[[str], bool]) -> bool:
    """True when `expr` calls an aggregate function anywhere inside it."""
    match expr:
        case ast.FunctionCall(name=name, args=args):
            return is_aggregate(name) or any(contains_aggregate(a, is_aggregate) for a in args)
        case (
            ast.ArithmeticBinary(left=left, right=right)
            | ast.Comparison(left=left, right=right)
            | ast.LogicalBinary(left=left, right=right)
        ):
            return contains_aggregate(left, is_aggregate) or contains_aggregate(right, is_aggregate)
        case ast.ArithmeticUnary(operand=o) | ast.Not(operand=o) | ast.IsNull(operand=o):
            return contains_aggregate(o, is_aggregate)
        case _:
            return False


def column_refs(expr: ast.Expression) -> list[ast.ColumnRef]:
    """Column references in `expr`, in order of appearance."""
    match expr:
        case ast.ColumnRef():
            return [expr]
        case ast.FunctionCall(args=args):
            return [r for a in args for r in column_refs(a)]
        case (
            ast.ArithmeticBinary(left=left, right=right)
            | ast.Comparison(left=left, right=right)
            | ast.LogicalBinary(left=left, right=right)
        ):
            return column_refs(left) + column_refs(right)
        case ast.ArithmeticUnary(operand=o) | ast.Not(operand=o) | ast.IsNull(operand=o):
            return column_refs(o)
        case ast.Between(operand=o, lower=lo, upper=hi):
            return column_refs(o) + column_refs(lo) + column_refs(hi)
        case ast.InList(operand=o, values=values):
            return column_refs(o) + [r for v in values for r in column_refs(v)]
        case _:
            return []


def strip_qualifier(expr: ast.Expression) -> ast.Expression:
    """`T.X` -> `X` for comparing GROUP BY and SELECT expressions (single-source queries)."""
    match expr:
        case ast.ColumnRef(name=name):
            return ast.ColumnRef(name)
        case ast.ArithmeticBinary(operator=op, left=left, right=right):
            return ast.ArithmeticBinary(op, strip_qualifier(left), strip_qualifier(right))
        case ast.FunctionCall(name=name, args=args, star=star):
            return ast.FunctionCall(name, tuple(strip_qualifier(a) for a in args), star)
        case _:
            return expr
