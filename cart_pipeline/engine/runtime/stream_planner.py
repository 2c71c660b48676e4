"""CREATE STREAM AS SELECT: a stream -> stream projection/filter, optionally re-keyed.

`PARTITION BY e` makes `e` the new key; with `SELECT *` the value columns become the source's
value columns followed by its old key columns (the partitioning column excluded), as ksqlDB
lays out the repartitioned schema.
"""

from __future__ import annotations

from dataclasses import dataclass

from cart_pipeline.engine.catalog.model import Catalog, Column, DataSource
from cart_pipeline.engine.errors import KsqlStatementError, unsupported
from cart_pipeline.engine.runtime import aggregates
from cart_pipeline.engine.runtime.expressions import (
    Evaluator,
    Scope,
    compile_expression,
    contains_aggregate,
    strip_qualifier,
)
from cart_pipeline.engine.runtime.planner import (
    _compile_where,
    _getter,
    _next_alias,
    check_projection,
    resolve_source,
    source_scope,
)
from cart_pipeline.engine.sql import ast


@dataclass
class StreamPlan:
    source: DataSource
    where: Evaluator | None
    keys: list[Evaluator]
    values: list[Evaluator]
    sink_columns: tuple[Column, ...]
    rekeyed: bool = False


def plan_stream(catalog: Catalog, query: ast.Query, sink_name: str) -> StreamPlan:
    if query.window is not None:
        raise unsupported("windowed aggregation (WINDOW clause)")
    source, alias = resolve_source(catalog, query.from_)
    if query.group_by is not None or source.kind == "TABLE":
        raise KsqlStatementError(
            "Invalid result type. Your SELECT query produces a TABLE. Please use CREATE TABLE "
            "AS SELECT statement instead."
        )
    if query.having is not None:
        raise unsupported("HAVING without GROUP BY")
    if query.limit is not None:
        raise unsupported("LIMIT in CREATE STREAM AS SELECT")
    scope = source_scope(source, alias)
    where = _compile_where(query.where, scope) if query.where is not None else None
    for item in query.select:
        if isinstance(item, ast.StructAllFields):
            raise unsupported("struct field expansion (->*)")
        if isinstance(item, ast.SelectColumn) and contains_aggregate(
            item.expression, aggregates.is_aggregate
        ):
            raise unsupported("aggregate functions without GROUP BY")
    if query.partition_by is not None:
        return _partitioned(source, scope, query, where)
    keys: dict[str, tuple[str, int]] = {}
    values: list[tuple[str, Evaluator, object]] = []
    taken: set[str] = set()
    for item in query.select:
        if isinstance(item, ast.AllColumns):
            for i, col in enumerate(source.columns):
                if col.key and col.name not in keys:
                    keys[col.name] = (col.name, i)
                elif not col.key:
                    values.append((col.name, _getter(i), col.type))
                taken.add(col.name)
            continue
        assert isinstance(item, ast.SelectColumn)
        expr = item.expression
        ref = source.column(expr.name) if isinstance(expr, ast.ColumnRef) else None
        name = item.alias or (ref.name if ref is not None else None) or _next_alias(taken)
        taken.add(name)
        if ref is not None and ref.key:
            if ref.name in keys:
                raise KsqlStatementError(
                    f"The projection contains a key column (`{ref.name}`) more than once, "
                    f"aliased as: {keys[ref.name][0]} and {name}."
                )
            keys[ref.name] = (name, scope.columns[ref.name][0])
            continue
        compiled = compile_expression(expr, scope, "SELECT")
        values.append((name, compiled.fn, compiled.type))
    check_projection(source, keys, bool(values), sink_name)
    ordered = [keys[c.name] for c in source.key_columns]
    key_cols = tuple(Column(n, source.columns[i].type, key=True) for n, i in ordered)
    sink = key_cols + tuple(Column(n, t, key=False) for n, _, t in values)  # type: ignore[arg-type]
    _check_duplicates(sink)
    return StreamPlan(
        source, where, [_getter(i) for _, i in ordered], [f for _, f, _ in values], sink
    )


def _check_duplicates(columns: tuple[Column, ...]) -> None:
    names = [c.name for c in columns]
    for i, n in enumerate(names):
        if n in names[:i]:
            raise KsqlStatementError(
                f"Duplicate value columns found in schema: `{n}` {columns[i].type}"
            )


def _partitioned(
    source: DataSource, scope: Scope, query: ast.Query, where: Evaluator | None
) -> StreamPlan:
    parts = list(query.partition_by or ())
    if len(parts) != 1:
        raise unsupported("PARTITION BY on several expressions")
    expr = parts[0]
    compiled = compile_expression(expr, scope, "PARTITION BY")
    if isinstance(expr, ast.NullLiteral):
        raise unsupported("PARTITION BY NULL")
    by_column = expr.name if isinstance(expr, ast.ColumnRef) else None
    if len(query.select) == 1 and isinstance(query.select[0], ast.AllColumns):
        key_name = by_column or "KSQL_COL_0"
        key = Column(key_name, compiled.type, key=True)
        vals = [(i, c) for i, c in enumerate(source.columns) if not c.key and c.name != by_column]
        vals += [(i, c) for i, c in enumerate(source.columns) if c.key and c.name != by_column]
        sink = (key, *tuple(Column(c.name, c.type) for _, c in vals))
        _check_duplicates(sink)
        return StreamPlan(
            source, where, [compiled.fn], [_getter(i) for i, _ in vals], sink, rekeyed=True
        )
    target = strip_qualifier(expr)
    key_col: Column | None = None
    values: list[tuple[str, Evaluator, object]] = []
    taken: set[str] = set()
    for item in query.select:
        if not isinstance(item, ast.SelectColumn):
            raise unsupported("SELECT * mixed with other columns under PARTITION BY")
        e = item.expression
        name = item.alias or (e.name if isinstance(e, ast.ColumnRef) else None)
        if strip_qualifier(e) == target and key_col is None:
            key_col = Column(name or _next_alias(taken), compiled.type, key=True)
            taken.add(key_col.name)
            continue
        name = name or _next_alias(taken)
        taken.add(name)
        c = compile_expression(e, scope, "SELECT")
        values.append((name, c.fn, c.type))
    if key_col is None:
        raise unsupported("PARTITION BY an expression missing from the projection")
    if not values:
        raise KsqlStatementError("The projection contains no value columns.")
    sink = (key_col, *(Column(n, t) for n, _, t in values))  # type: ignore[arg-type]
    _check_duplicates(sink)
    return StreamPlan(source, where, [compiled.fn], [f for _, f, _ in values], sink, rekeyed=True)
