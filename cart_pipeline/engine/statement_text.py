"""ksqlDB's rendering of a persistent query's statement, as its error messages quote it.

ksqlDB ends some errors with ``Statement: <the statement after its rewrite>``: column
references qualified with their source, every projection aliased, one clause per line. This
renders the shapes the engine runs (one source, projections, WHERE, GROUP BY); for anything
else it returns None and the caller quotes the statement as written.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from cart_pipeline.engine.sql import ast
from cart_pipeline.engine.sql.format import format_expression


def _qualify(node: Any, source: str) -> Any:
    if isinstance(node, ast.ColumnRef) and node.source is None:
        return dataclasses.replace(node, source=source)
    if isinstance(node, tuple):
        return tuple(_qualify(item, source) for item in node)
    if dataclasses.is_dataclass(node) and not isinstance(node, type):
        changes = {
            f.name: _qualify(getattr(node, f.name), source)
            for f in dataclasses.fields(node)
            if f.name != "location"
        }
        return dataclasses.replace(node, **changes)
    return node


def format_create_as_select(stmt: ast.CreateAsSelect) -> str | None:
    query = stmt.query
    source = query.from_
    if not isinstance(source, ast.AliasedSource) or query.window or query.having:
        return None
    if query.partition_by or query.limit is not None:
        return None
    alias = source.alias or source.name
    items: list[str] = []
    generated = 0  # unaliased expressions are named KSQL_COL_0, KSQL_COL_1...
    for item in query.select:
        if not isinstance(item, ast.SelectColumn) or isinstance(item.expression, ast.Dereference):
            return None
        name = item.alias
        if name is None and isinstance(item.expression, ast.ColumnRef):
            name = item.expression.name
        elif name is None:
            name = f"KSQL_COL_{generated}"
            generated += 1
        items.append(f"  {format_expression(_qualify(item.expression, alias))} {name}")
    head = f"CREATE {stmt.kind} {stmt.name}"
    if stmt.properties:
        props = ", ".join(f"{p.name.upper()}={format_expression(p.value)}" for p in stmt.properties)
        head += f" WITH ({props})"
    lines = [f"{head} AS SELECT", ",\n".join(items), f"FROM {source.name} {alias}"]
    if query.where is not None:
        lines.append(f"WHERE {format_expression(_qualify(query.where, alias))}")
    if query.group_by:
        lines.append(
            "GROUP BY " + ", ".join(format_expression(_qualify(e, alias)) for e in query.group_by)
        )
    lines.append("EMIT CHANGES")
    return "\n".join(lines)
