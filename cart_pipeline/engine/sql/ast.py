"""Typed syntax tree for ksqlDB statements, expressions and SQL types.

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
from typing import Literal as TypingLiteral

from cart_pipeline.engine.sql.expression_ast import (
    ArithmeticBinary,
    ArithmeticOperator,
    ArithmeticUnary,
    ArrayConstructor,
    ArrayType,
    Between,
    BigIntLiteral,
    BooleanLiteral,
    Case,
    Cast,
    ColumnRef,
    Comparison,
    ComparisonOperator,
    CustomType,
    DecimalLiteral,
    DecimalType,
    Dereference,
    DoubleLiteral,
    Expression,
    FunctionCall,
    InList,
    IntegerLiteral,
    IntervalUnit,
    IsNull,
    Lambda,
    Like,
    Literal,
    Location,
    LogicalBinary,
    MapConstructor,
    MapType,
    Not,
    NullLiteral,
    PrimitiveType,
    PrimitiveTypeName,
    SqlType,
    StringLiteral,
    StructConstructor,
    StructField,
    StructType,
    Subscript,
    WhenClause,
)

__all__ = [
    "AliasedSource",
    "AllColumns",
    "ArithmeticBinary",
    "ArithmeticOperator",
    "ArithmeticUnary",
    "ArrayConstructor",
    "ArrayType",
    "Between",
    "BigIntLiteral",
    "BooleanLiteral",
    "Case",
    "Cast",
    "ColumnConstraint",
    "ColumnRef",
    "Comparison",
    "ComparisonOperator",
    "CreateAsSelect",
    "CreateSource",
    "CustomType",
    "DecimalLiteral",
    "DecimalType",
    "DefineVariable",
    "Dereference",
    "DescribeFunction",
    "DescribeSource",
    "DescribeSources",
    "DoubleLiteral",
    "DropSource",
    "DropType",
    "Duration",
    "Explain",
    "Expression",
    "FunctionCall",
    "InList",
    "InsertInto",
    "InsertValues",
    "IntegerLiteral",
    "IntervalUnit",
    "IsNull",
    "Join",
    "JoinType",
    "JoinWindow",
    "JoinedSource",
    "Lambda",
    "Like",
    "Literal",
    "Location",
    "LogicalBinary",
    "MapConstructor",
    "MapType",
    "Not",
    "NullLiteral",
    "ParsedStatement",
    "PrimitiveType",
    "PrimitiveTypeName",
    "PrintTopic",
    "Property",
    "Query",
    "RegisterType",
    "Relation",
    "SelectColumn",
    "SelectItem",
    "SetProperty",
    "ShowStatement",
    "ShowSubject",
    "SourceKind",
    "SqlType",
    "Statement",
    "StringLiteral",
    "StructAllFields",
    "StructConstructor",
    "StructField",
    "StructType",
    "Subscript",
    "TableElement",
    "TerminateQuery",
    "TimeUnit",
    "UndefineVariable",
    "UnsetProperty",
    "UnsupportedStatement",
    "WhenClause",
    "WindowExpression",
    "property_map",
]

# ---------------------------------------------------------------------------------------------
# Queries

TimeUnit = TypingLiteral["MILLISECONDS", "SECONDS", "MINUTES", "HOURS", "DAYS"]


@dataclass(frozen=True, slots=True)
class Duration:
    """``5 MINUTES``; singular unit words are normalised to the plural."""

    value: int
    unit: TimeUnit


@dataclass(frozen=True, slots=True)
class SelectColumn:
    expression: Expression
    alias: str | None = None


@dataclass(frozen=True, slots=True)
class AllColumns:
    """``*`` or ``source.*``."""

    source: str | None = None


@dataclass(frozen=True, slots=True)
class StructAllFields:
    """``base->*``: every field of a struct."""

    base: Expression


SelectItem = SelectColumn | AllColumns | StructAllFields


@dataclass(frozen=True, slots=True)
class AliasedSource:
    name: str
    alias: str | None = None
    location: Location | None = field(default=None, compare=False, repr=False, kw_only=True)


@dataclass(frozen=True, slots=True)
class JoinWindow:
    """``WITHIN 10 SECONDS`` (before == after) or ``WITHIN (1 SECONDS, 2 SECONDS)``."""

    before: Duration
    after: Duration
    grace: Duration | None = None


JoinType = TypingLiteral["INNER", "LEFT", "RIGHT", "FULL"]


@dataclass(frozen=True, slots=True)
class JoinedSource:
    join_type: JoinType
    source: AliasedSource
    condition: Expression
    within: JoinWindow | None = None


@dataclass(frozen=True, slots=True)
class Join:
    left: AliasedSource
    right: tuple[JoinedSource, ...]


Relation = AliasedSource | Join


@dataclass(frozen=True, slots=True)
class WindowExpression:
    """TUMBLING (size), HOPPING (size, advance) or SESSION (size = inactivity gap)."""

    kind: TypingLiteral["TUMBLING", "HOPPING", "SESSION"]
    size: Duration
    advance: Duration | None = None
    retention: Duration | None = None
    grace: Duration | None = None


@dataclass(frozen=True, slots=True)
class Query:
    """A SELECT; also a statement on its own (a push or pull query)."""

    select: tuple[SelectItem, ...]
    from_: Relation
    window: WindowExpression | None = None
    where: Expression | None = None
    group_by: tuple[Expression, ...] | None = None
    partition_by: tuple[Expression, ...] | None = None
    having: Expression | None = None
    emit: TypingLiteral["CHANGES", "FINAL"] | None = None
    limit: int | None = None


# ---------------------------------------------------------------------------------------------
# Statements

SourceKind = TypingLiteral["STREAM", "TABLE"]
ColumnConstraint = TypingLiteral["KEY", "PRIMARY KEY", "HEADERS", "HEADER"]


@dataclass(frozen=True, slots=True)
class Property:
    """One ``NAME = literal`` of a WITH clause; the value keeps its literal type."""

    name: str
    value: Literal


def property_map(properties: tuple[Property, ...]) -> dict[str, Literal]:
    """WITH properties keyed by upper-cased name (ksqlDB treats the names case-insensitively)."""
    return {prop.name.upper(): prop.value for prop in properties}


@dataclass(frozen=True, slots=True)
class TableElement:
    """A column definition; ``header_key`` is set for ``HEADER('key')``."""

    name: str
    type: SqlType
    constraint: ColumnConstraint | None = None
    header_key: str | None = None


@dataclass(frozen=True, slots=True)
class CreateSource:
    """CREATE [OR REPLACE] [SOURCE] STREAM|TABLE [IF NOT EXISTS] name (columns) WITH (...)."""

    kind: SourceKind
    name: str
    elements: tuple[TableElement, ...]
    properties: tuple[Property, ...] = ()
    or_replace: bool = False
    if_not_exists: bool = False
    is_source: bool = False
    location: Location | None = field(default=None, compare=False, repr=False, kw_only=True)


@dataclass(frozen=True, slots=True)
class CreateAsSelect:
    """CREATE [OR REPLACE] STREAM|TABLE [IF NOT EXISTS] name [WITH (...)] AS SELECT ..."""

    kind: SourceKind
    name: str
    query: Query
    properties: tuple[Property, ...] = ()
    or_replace: bool = False
    if_not_exists: bool = False
    location: Location | None = field(default=None, compare=False, repr=False, kw_only=True)


@dataclass(frozen=True, slots=True)
class InsertInto:
    """INSERT INTO name [WITH (...)] SELECT ..."""

    target: str
    query: Query
    properties: tuple[Property, ...] = ()
    location: Location | None = field(default=None, compare=False, repr=False, kw_only=True)


@dataclass(frozen=True, slots=True)
class InsertValues:
    """INSERT INTO name [(columns)] VALUES (values); ``columns`` is empty when not given."""

    target: str
    columns: tuple[str, ...]
    values: tuple[Expression, ...]
    location: Location | None = field(default=None, compare=False, repr=False, kw_only=True)


@dataclass(frozen=True, slots=True)
class DropSource:
    kind: SourceKind
    name: str
    if_exists: bool = False
    delete_topic: bool = False
    location: Location | None = field(default=None, compare=False, repr=False, kw_only=True)


@dataclass(frozen=True, slots=True)
class TerminateQuery:
    """TERMINATE query_id; ``query_id`` is None for TERMINATE ALL."""

    query_id: str | None


ShowSubject = TypingLiteral[
    "STREAMS",
    "TABLES",
    "QUERIES",
    "TOPICS",
    "PROPERTIES",
    "FUNCTIONS",
    "TYPES",
    "VARIABLES",
    "CONNECTORS",
    "CONNECTOR PLUGINS",
]


@dataclass(frozen=True, slots=True)
class ShowStatement:
    """SHOW/LIST ...; ``all_topics`` is SHOW ALL TOPICS (internal topics too)."""

    subject: ShowSubject
    extended: bool = False
    all_topics: bool = False


@dataclass(frozen=True, slots=True)
class DescribeSource:
    name: str
    extended: bool = False
    location: Location | None = field(default=None, compare=False, repr=False, kw_only=True)


@dataclass(frozen=True, slots=True)
class DescribeSources:
    """DESCRIBE STREAMS|TABLES [EXTENDED]."""

    kind: TypingLiteral["STREAMS", "TABLES"]
    extended: bool = False


@dataclass(frozen=True, slots=True)
class DescribeFunction:
    name: str


@dataclass(frozen=True, slots=True)
class SetProperty:
    name: str
    value: str


@dataclass(frozen=True, slots=True)
class UnsetProperty:
    name: str


@dataclass(frozen=True, slots=True)
class DefineVariable:
    name: str
    value: str


@dataclass(frozen=True, slots=True)
class UndefineVariable:
    name: str


@dataclass(frozen=True, slots=True)
class PrintTopic:
    """PRINT topic; an unquoted topic name keeps its case here (ksqlDB matches it loosely)."""

    topic: str
    from_beginning: bool = False
    interval: int | None = None
    limit: int | None = None


@dataclass(frozen=True, slots=True)
class Explain:
    """EXPLAIN <statement> or EXPLAIN <query id>."""

    statement: Statement | None = None
    query_id: str | None = None


@dataclass(frozen=True, slots=True)
class RegisterType:
    """CREATE TYPE [IF NOT EXISTS] name AS type."""

    name: str
    type: SqlType
    if_not_exists: bool = False


@dataclass(frozen=True, slots=True)
class DropType:
    name: str
    if_exists: bool = False


@dataclass(frozen=True, slots=True)
class UnsupportedStatement:
    """A statement ksqlDB knows but this engine does not run (ALTER, ASSERT, connectors...).

    ``kind`` names it for the refusal message, e.g. ``"ALTER STREAM"``; ``text`` is verbatim.
    """

    kind: str
    text: str


Statement = (
    Query
    | CreateSource
    | CreateAsSelect
    | InsertInto
    | InsertValues
    | DropSource
    | TerminateQuery
    | ShowStatement
    | DescribeSource
    | DescribeSources
    | DescribeFunction
    | SetProperty
    | UnsetProperty
    | DefineVariable
    | UndefineVariable
    | PrintTopic
    | Explain
    | RegisterType
    | DropType
    | UnsupportedStatement
)


@dataclass(frozen=True, slots=True)
class ParsedStatement:
    """One statement of a request with its exact source text (``;`` included when present).

    ``start``/``end`` are offsets of that text in the request; ``location`` is its first token.
    """

    text: str
    statement: Statement
    start: int
    end: int
    location: Location
