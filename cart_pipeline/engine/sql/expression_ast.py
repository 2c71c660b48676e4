"""Typed syntax tree, part one: positions, SQL types and expressions.

Import these through :mod:`cart_pipeline.engine.sql.ast`, which re-exports them next to the
query and statement nodes; they live apart only to keep each module short.

Every node is a frozen, slotted dataclass, so trees compare by value (tests and the engine can
match on them) and cannot be mutated behind the planner's back. Names are already normalised
the way ksqlDB does it: unquoted identifiers are upper-cased, quoted ones keep their case.

Nodes that the engine may need to point at in an error message (source names, expressions)
carry a ``location``; it is excluded from equality so that ``parse(format(e)) == e`` holds.
The parser accepts more than the engine runs (joins, windows, lambdas...): refusing those is
the engine's job, with a message naming the feature.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Literal as TypingLiteral

# ---------------------------------------------------------------------------------------------
# Positions


@dataclass(frozen=True, slots=True)
class Location:
    """1-based line and column of a node's first token, relative to the whole request text."""

    line: int
    column: int


# Every ``location`` field below is keyword-only and ignored by ``==`` and ``repr``.


# ---------------------------------------------------------------------------------------------
# SQL types

PrimitiveTypeName = TypingLiteral[
    "BOOLEAN", "INTEGER", "BIGINT", "DOUBLE", "STRING", "BYTES", "DATE", "TIME", "TIMESTAMP"
]


@dataclass(frozen=True, slots=True)
class PrimitiveType:
    """A built-in scalar type; aliases are resolved (INT -> INTEGER, VARCHAR -> STRING)."""

    name: PrimitiveTypeName


@dataclass(frozen=True, slots=True)
class DecimalType:
    precision: int
    scale: int


@dataclass(frozen=True, slots=True)
class ArrayType:
    element: SqlType


@dataclass(frozen=True, slots=True)
class MapType:
    key: SqlType
    value: SqlType


@dataclass(frozen=True, slots=True)
class StructField:
    name: str
    type: SqlType


@dataclass(frozen=True, slots=True)
class StructType:
    fields: tuple[StructField, ...]


@dataclass(frozen=True, slots=True)
class CustomType:
    """A name registered with CREATE TYPE; the engine resolves it."""

    name: str


SqlType = PrimitiveType | DecimalType | ArrayType | MapType | StructType | CustomType

# ---------------------------------------------------------------------------------------------
# Expressions


@dataclass(frozen=True, slots=True)
class NullLiteral:
    location: Location | None = field(default=None, compare=False, repr=False, kw_only=True)


@dataclass(frozen=True, slots=True)
class BooleanLiteral:
    value: bool
    location: Location | None = field(default=None, compare=False, repr=False, kw_only=True)


@dataclass(frozen=True, slots=True)
class IntegerLiteral:
    """An integer literal that fits in 32 bits (ksqlDB type INTEGER)."""

    value: int
    location: Location | None = field(default=None, compare=False, repr=False, kw_only=True)


@dataclass(frozen=True, slots=True)
class BigIntLiteral:
    """An integer literal too large for 32 bits (ksqlDB type BIGINT)."""

    value: int
    location: Location | None = field(default=None, compare=False, repr=False, kw_only=True)


@dataclass(frozen=True, slots=True)
class DecimalLiteral:
    """``1.50``: ksqlDB types it DECIMAL(precision, scale) from the digits as written."""

    value: Decimal
    location: Location | None = field(default=None, compare=False, repr=False, kw_only=True)


@dataclass(frozen=True, slots=True)
class DoubleLiteral:
    """A literal with an exponent (``1.5E0``): ksqlDB types it DOUBLE."""

    value: float
    location: Location | None = field(default=None, compare=False, repr=False, kw_only=True)


@dataclass(frozen=True, slots=True)
class StringLiteral:
    value: str
    location: Location | None = field(default=None, compare=False, repr=False, kw_only=True)


@dataclass(frozen=True, slots=True)
class ColumnRef:
    """``name`` or ``source.name``."""

    name: str
    source: str | None = None
    location: Location | None = field(default=None, compare=False, repr=False, kw_only=True)


@dataclass(frozen=True, slots=True)
class Dereference:
    """Struct field access ``base->field``."""

    base: Expression
    field_name: str
    location: Location | None = field(default=None, compare=False, repr=False, kw_only=True)


@dataclass(frozen=True, slots=True)
class Subscript:
    """``array[index]`` (1-based in ksqlDB, negative counts from the end) or ``map[key]``."""

    base: Expression
    index: Expression
    location: Location | None = field(default=None, compare=False, repr=False, kw_only=True)


@dataclass(frozen=True, slots=True)
class IntervalUnit:
    """A time unit passed as a function argument, e.g. ``SECONDS`` in TIMESTAMPADD."""

    unit: str
    location: Location | None = field(default=None, compare=False, repr=False, kw_only=True)


@dataclass(frozen=True, slots=True)
class Lambda:
    """``x => expr`` or ``(x, y) => expr``; only valid as a function argument."""

    parameters: tuple[str, ...]
    body: Expression
    location: Location | None = field(default=None, compare=False, repr=False, kw_only=True)


@dataclass(frozen=True, slots=True)
class FunctionCall:
    """``NAME(args)``; ``star`` marks ``COUNT(*)`` (which has no arguments)."""

    name: str
    args: tuple[Expression, ...]
    star: bool = False
    location: Location | None = field(default=None, compare=False, repr=False, kw_only=True)


@dataclass(frozen=True, slots=True)
class Cast:
    operand: Expression
    type: SqlType
    location: Location | None = field(default=None, compare=False, repr=False, kw_only=True)


@dataclass(frozen=True, slots=True)
class WhenClause:
    condition: Expression
    result: Expression


@dataclass(frozen=True, slots=True)
class Case:
    """Searched ``CASE WHEN c THEN r ... END`` or, with ``operand``, ``CASE x WHEN v THEN r``."""

    operand: Expression | None
    whens: tuple[WhenClause, ...]
    default: Expression | None = None
    location: Location | None = field(default=None, compare=False, repr=False, kw_only=True)


ArithmeticOperator = TypingLiteral["+", "-", "*", "/", "%"]
ComparisonOperator = TypingLiteral[
    "=", "<>", "<", "<=", ">", ">=", "IS DISTINCT FROM", "IS NOT DISTINCT FROM"
]


@dataclass(frozen=True, slots=True)
class ArithmeticUnary:
    operator: TypingLiteral["+", "-"]
    operand: Expression
    location: Location | None = field(default=None, compare=False, repr=False, kw_only=True)


@dataclass(frozen=True, slots=True)
class ArithmeticBinary:
    operator: ArithmeticOperator
    left: Expression
    right: Expression
    location: Location | None = field(default=None, compare=False, repr=False, kw_only=True)


@dataclass(frozen=True, slots=True)
class Comparison:
    """Binary comparison; ``!=`` is normalised to ``<>`` as in ksqlDB."""

    operator: ComparisonOperator
    left: Expression
    right: Expression
    location: Location | None = field(default=None, compare=False, repr=False, kw_only=True)


@dataclass(frozen=True, slots=True)
class IsNull:
    """``x IS NULL``, or ``x IS NOT NULL`` when ``negated``."""

    operand: Expression
    negated: bool = False
    location: Location | None = field(default=None, compare=False, repr=False, kw_only=True)


@dataclass(frozen=True, slots=True)
class Between:
    """``x BETWEEN a AND b``; ``NOT BETWEEN`` is ``Not(Between(...))`` as in ksqlDB."""

    operand: Expression
    lower: Expression
    upper: Expression
    location: Location | None = field(default=None, compare=False, repr=False, kw_only=True)


@dataclass(frozen=True, slots=True)
class InList:
    """``x IN (a, b)``; ``NOT IN`` is ``Not(InList(...))`` as in ksqlDB."""

    operand: Expression
    values: tuple[Expression, ...]
    location: Location | None = field(default=None, compare=False, repr=False, kw_only=True)


@dataclass(frozen=True, slots=True)
class Like:
    """``x LIKE pattern [ESCAPE 'c']``; ``NOT LIKE`` is ``Not(Like(...))`` as in ksqlDB."""

    operand: Expression
    pattern: Expression
    escape: str | None = None
    location: Location | None = field(default=None, compare=False, repr=False, kw_only=True)


@dataclass(frozen=True, slots=True)
class Not:
    operand: Expression
    location: Location | None = field(default=None, compare=False, repr=False, kw_only=True)


@dataclass(frozen=True, slots=True)
class LogicalBinary:
    operator: TypingLiteral["AND", "OR"]
    left: Expression
    right: Expression
    location: Location | None = field(default=None, compare=False, repr=False, kw_only=True)


@dataclass(frozen=True, slots=True)
class ArrayConstructor:
    items: tuple[Expression, ...]
    location: Location | None = field(default=None, compare=False, repr=False, kw_only=True)


@dataclass(frozen=True, slots=True)
class MapConstructor:
    entries: tuple[tuple[Expression, Expression], ...]
    location: Location | None = field(default=None, compare=False, repr=False, kw_only=True)


@dataclass(frozen=True, slots=True)
class StructConstructor:
    fields: tuple[tuple[str, Expression], ...]
    location: Location | None = field(default=None, compare=False, repr=False, kw_only=True)


Literal = (
    NullLiteral
    | BooleanLiteral
    | IntegerLiteral
    | BigIntLiteral
    | DecimalLiteral
    | DoubleLiteral
    | StringLiteral
)
Expression = (
    Literal
    | ColumnRef
    | Dereference
    | Subscript
    | IntervalUnit
    | Lambda
    | FunctionCall
    | Cast
    | Case
    | ArithmeticUnary
    | ArithmeticBinary
    | Comparison
    | IsNull
    | Between
    | InList
    | Like
    | Not
    | LogicalBinary
    | ArrayConstructor
    | MapConstructor
    | StructConstructor
)
