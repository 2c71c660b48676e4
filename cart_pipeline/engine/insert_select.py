"""INSERT INTO <stream> SELECT ...: a persistent query writing into an existing stream.

The query (`INSERTQUERY_<n>`) runs the CREATE STREAM AS SELECT machinery with the target
stream as its sink: its rows are written to the target's topic in the target's formats.
Validation follows ksqlDB: the target must be an existing, writable stream, the query must
produce a stream, and its schema must match the target's column by column.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from cart_pipeline.engine.catalog.model import Catalog, Column, DataSource, QueryInfo
from cart_pipeline.engine.errors import KsqlStatementError, unsupported
from cart_pipeline.engine.runtime.planner import resolve_source
from cart_pipeline.engine.runtime.stream_planner import StreamPlan, plan_stream
from cart_pipeline.engine.sql import ast
from cart_pipeline.engine.types import SqlType

if TYPE_CHECKING:
    from cart_pipeline.engine.ddl import Context

_QUERY_ID = re.compile(r"[A-Za-z0-9_]+")
_RESERVED_PREFIXES = ("INSERTQUERY_", "CTAS_", "CSAS_", "CST_")


def is_insert(catalog: Catalog, query: QueryInfo) -> bool:
    """An INSERT query: one that is not the query creating (or materializing) its sink."""
    sink = catalog.source(query.sink)
    return sink is None or sink.writer_query != query.query_id


def insert_queries(catalog: Catalog, source: DataSource) -> tuple[list[str], list[str]]:
    """(INSERT queries reading `source`, INSERT queries writing into it), both sorted."""
    inserts = [q for q in catalog.queries.values() if is_insert(catalog, q)]
    reading = sorted(q.query_id for q in inserts if source.name in q.sources)
    writing = sorted(q.query_id for q in inserts if q.sink == source.name)
    return reading, writing


def check_drop(catalog: Catalog, source: DataSource) -> None:
    """ksqlDB refuses to DROP a source an INSERT query reads or writes (before any other
    referential check, as its EngineContext does)."""
    reading, writing = insert_queries(catalog, source)
    if reading or writing:
        raise KsqlStatementError(
            f"Cannot drop {source.name}.\nThe following queries read from this source: "
            f"[{', '.join(reading)}].\nThe following queries write into this source: "
            f"[{', '.join(writing)}].\nYou need to terminate them before dropping {source.name}."
        )


def _target(catalog: Catalog, stmt: ast.InsertInto) -> DataSource:
    target = catalog.source(stmt.target)
    if target is None:
        where = ""
        if stmt.location is not None:
            where = f"Line: {stmt.location.line}, Col: {stmt.location.column}: "
        raise KsqlStatementError(f"{where}Source `{stmt.target}` does not exist.")
    if target.kind != "STREAM":
        raise KsqlStatementError(
            f"INSERT INTO can only be used to insert into a stream. {target.name} is a table."
        )
    return target


def _query_id(ctx: Context, stmt: ast.InsertInto) -> str:
    requested: str | None = None
    for prop in stmt.properties:
        if prop.name.upper() != "QUERY_ID":
            raise unsupported(f"WITH property {prop.name.upper()} in INSERT INTO ... SELECT")
        requested = str(getattr(prop.value, "value", ""))
    if requested is None:
        return f"INSERTQUERY_{ctx.seq}"
    query_id = requested.upper()
    if query_id.startswith(_RESERVED_PREFIXES):
        raise KsqlStatementError(
            "Query IDs must not start with a reserved query ID prefix "
            f"({', '.join(_RESERVED_PREFIXES)}). Got '{query_id}'."
        )
    if not _QUERY_ID.fullmatch(query_id):
        raise KsqlStatementError(
            f"Query IDs may contain only alphanumeric characters and '_'. Got: '{query_id}'"
        )
    if query_id in ctx.catalog.queries:
        raise KsqlStatementError(f"Query ID '{query_id}' already exists.")
    return query_id


def _decimal_widens(src: SqlType, dst: SqlType) -> bool:
    """ksqlDB's DecimalUtil.canImplicitlyCast between two DECIMAL types."""
    (p1, s1), (p2, s2) = src.params, dst.params
    return s2 >= s1 and p2 - s2 >= p1 - s1


def _schema_text(columns: tuple[Column, ...]) -> str:
    return ", ".join(c.schema_text() for c in columns)


def _check_schema(result: tuple[Column, ...], sink: tuple[Column, ...]) -> None:
    """ksqlDB's LogicalSchema.compatibleSchema: same columns (name, key or value, position),
    types equal or a DECIMAL that widens losslessly."""
    compatible = len(result) == len(sink)
    casts = False
    for r, s in zip(result, sink, strict=False):
        if r.name != s.name or r.key != s.key:
            compatible = False
        elif r.type != s.type:
            if (
                r.type.base == "DECIMAL"
                and s.type.base == "DECIMAL"
                and _decimal_widens(r.type, s.type)
            ):
                casts = True
            elif r.type.is_numeric and s.type.is_numeric:
                casts = True  # newer ksqlDB versions cast some numbers implicitly: not decided
            else:
                compatible = False
    if not compatible:
        raise KsqlStatementError(
            "Incompatible schema between results and sink.\n"
            f"Result schema is {_schema_text(result)}\nSink schema is {_schema_text(sink)}"
        )
    if casts:
        raise unsupported("INSERT INTO ... SELECT with an implicit numeric cast to the sink")


def _plan(ctx: Context, stmt: ast.InsertInto, target: DataSource) -> StreamPlan:
    source, _ = resolve_source(ctx.catalog, stmt.query.from_)
    if stmt.query.group_by is not None or source.kind == "TABLE":
        raise KsqlStatementError(
            f"Incompatible data sink and query result. Data sink ({target.name}) type is "
            "KSTREAM but select query result is KTABLE."
        )
    return plan_stream(ctx.catalog, stmt.query, target.name)


def insert_into(ctx: Context, stmt: ast.InsertInto, text: str) -> dict[str, object]:
    """Validate (and, unless a dry run, start) an INSERT INTO ... SELECT query."""
    target = _target(ctx.catalog, stmt)
    plan = _plan(ctx, stmt, target)
    query_id = _query_id(ctx, stmt)
    _check_schema(plan.sink_columns, target.columns)
    if target.is_source:
        raise KsqlStatementError(f"Cannot insert into read-only stream: {target.name}")
    source = plan.source
    ctx.catalog.queries[query_id] = QueryInfo(
        query_id, text, target.name, target.topic, (source.name,)
    )
    source.readers.add(query_id)
    if not ctx.dry_run:
        ctx.engine.register_query(
            query_id, plan, target, dict(ctx.properties), start=not ctx.replay
        )
    return {
        "@type": "currentStatus",
        "statementText": text,
        "commandId": f"stream/`{target.name}`/create",
        "commandStatus": {
            "status": "SUCCESS",
            "message": f"Created query with ID {query_id}",
            "queryId": query_id,
        },
        "commandSequenceNumber": ctx.seq,
        "warnings": [],
    }
