"""Planning: turn a SELECT's AST into a typed, executable plan (ksqlDB's checks included).

Two plans exist: `SelectPlan` (projection + filter, for pull and push queries) and
`AggregatePlan` (GROUP BY + aggregates, for CREATE TABLE AS SELECT).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from cart_pipeline.engine.catalog.model import Catalog, Column, DataSource
from cart_pipeline.engine.errors import KsqlStatementError, unsupported
from cart_pipeline.engine.runtime import aggregates
from cart_pipeline.engine.runtime.aggregate_analysis import AggregateCall, plan_outputs
from cart_pipeline.engine.runtime.expressions import (
    PSEUDO_COLUMNS,
    Compiled,
    Evaluator,
    Scope,
    column_refs,
    compile_expression,
    contains_aggregate,
    format_expression,
    strip_qualifier,
)
from cart_pipeline.engine.sql import ast
from cart_pipeline.engine.types import SqlType


@dataclass(frozen=True)
class OutputColumn:
    name: str
    type: SqlType
    fn: Evaluator
    key: bool = False  # a plain reference to a key column of the source


@dataclass
class SelectPlan:
    source: DataSource
    columns: list[OutputColumn]
    where: Evaluator | None
    limit: int | None
    where_expr: ast.Expression | None = None

    def schema_text(self, mark_keys: bool) -> str:
        return ", ".join(
            f"`{c.name}` {c.type}{' KEY' if mark_keys and c.key else ''}" for c in self.columns
        )

    def project(self, row: list[object]) -> list[object] | None:
        """Filter then project one source row (None = filtered out)."""
        if self.where is not None and self.where(row) is not True:
            return None
        return [c.fn(row) for c in self.columns]


@dataclass
class AggregatePlan:
    """GROUP BY plan; `value_layout` maps each sink value column to ('key', i) or ('agg', j)."""

    source: DataSource
    where: Evaluator | None
    group_by: list[Evaluator]
    group_by_text: list[str]
    calls: list[AggregateCall]
    value_layout: list[tuple[str, int]]
    sink_columns: tuple[Column, ...]
    extra: dict[str, object] = field(default_factory=dict)
    # source row index of each GROUP BY expression that is a plain column reference
    # (None for any other expression): what the batch path (batch.py) needs to read
    group_by_columns: list[int | None] = field(default_factory=list)
    # each value column over [group values..., aggregate results...]: set when some value is
    # not a plain aggregate call (then `value_layout` is unused)
    projection: list[Evaluator] | None = None
    having: Evaluator | None = None  # over the same row; False/NULL hides the group's row

    @property
    def simple(self) -> bool:
        """A STREAM source, plain aggregate calls as values, no HAVING (batch.py's shape)."""
        return self.projection is None and self.having is None and self.source.kind == "STREAM"

    def output(
        self, group_key: tuple[object, ...], states: list[object] | tuple[object, ...]
    ) -> tuple[tuple[object, ...], bool]:
        """A group's value columns from its aggregate states, and whether HAVING keeps it."""
        calls = self.calls
        if self.simple:
            return tuple([calls[j].aggregate.result(states[j]) for _, j in self.value_layout]), True
        row = [*group_key, *[c.aggregate.result(s) for c, s in zip(calls, states, strict=True)]]
        if self.projection is None:
            n = len(group_key)
            values = tuple([row[n + j] for _, j in self.value_layout])
        else:
            values = tuple([f(row) for f in self.projection])
        return values, self.having is None or self.having(row) is True


def source_scope(source: DataSource, alias: str | None = None) -> Scope:
    """Row layout: the source's columns in order, then ROWTIME, ROWPARTITION, ROWOFFSET."""
    cols: dict[str, tuple[int, SqlType]] = {
        c.name: (i, c.type) for i, c in enumerate(source.columns)
    }
    base = len(source.columns)
    for j, (name, sql_type) in enumerate(PSEUDO_COLUMNS):
        cols.setdefault(name, (base + j, sql_type))
    names = {source.name} | ({alias} if alias else set())
    return Scope(cols, frozenset(names))


def resolve_source(catalog: Catalog, relation: ast.Relation) -> tuple[DataSource, str | None]:
    if isinstance(relation, ast.Join):
        raise unsupported("JOIN")
    source = catalog.source(relation.name)
    if source is None:
        raise KsqlStatementError(f"{relation.name} does not exist.")
    return source, relation.alias


def _next_alias(taken: set[str]) -> str:
    i = 0
    while f"KSQL_COL_{i}" in taken:
        i += 1
    name = f"KSQL_COL_{i}"
    taken.add(name)
    return name


def _refuse_common(query: ast.Query, having: bool = False) -> None:
    """Refuse what no plan runs yet (HAVING only where `having` says a plan handles it)."""
    if query.window is not None:
        raise unsupported("windowed aggregation (WINDOW clause)")
    if query.partition_by is not None:
        raise unsupported("PARTITION BY")
    if query.having is not None and not having:
        raise unsupported("HAVING")


def plan_select(catalog: Catalog, query: ast.Query) -> SelectPlan:
    """A projection/filter plan for a pull or push query."""
    _refuse_common(query)
    source, alias = resolve_source(catalog, query.from_)
    if query.emit is None:
        _refuse_pull_pseudo_columns(query)
    if query.group_by is not None:
        if query.emit is None:
            raise KsqlStatementError(
                "Pull queries don't support GROUP BY clauses. See https://cnfl.io/queries for "
                "more info.\nAdd EMIT CHANGES if you intended to issue a push query."
            )
        raise unsupported("GROUP BY in a transient push query")
    scope = source_scope(source, alias)
    columns: list[OutputColumn] = []
    taken: set[str] = set()
    for item in query.select:
        if isinstance(item, ast.AllColumns):
            if item.source is not None and item.source not in scope.sources:
                raise KsqlStatementError(
                    f"'{item.source}' is not a valid stream/table name or alias."
                )
            for i, col in enumerate(source.columns):
                columns.append(OutputColumn(col.name, col.type, _getter(i), col.key))
                taken.add(col.name)
            continue
        if isinstance(item, ast.StructAllFields):
            raise unsupported("struct field expansion (->*)")
        expr = item.expression
        if contains_aggregate(expr, aggregates.is_aggregate):
            raise unsupported("aggregate functions in a transient query")
        compiled = compile_expression(expr, scope, "SELECT")
        name = item.alias or (expr.name if isinstance(expr, ast.ColumnRef) else None)
        if name is None:
            name = _next_alias(taken)
        taken.add(name)
        ref_col = source.column(expr.name) if isinstance(expr, ast.ColumnRef) else None
        is_key = ref_col is not None and ref_col.key
        columns.append(OutputColumn(name, compiled.type, compiled.fn, is_key))
    where = None
    if query.where is not None:
        where = _compile_where(query.where, scope)
    if query.limit is not None and query.limit < 0:
        raise KsqlStatementError(
            "Pull queries don't support negative integers in the LIMIT clause. "
            "See https://cnfl.io/queries for more info."
        )
    return SelectPlan(source, columns, where, query.limit, query.where)


_PULL_DISALLOWED = ("ROWPARTITION", "ROWOFFSET")


def _refuse_pull_pseudo_columns(query: ast.Query) -> None:
    """ksqlDB's pull queries cannot see ROWPARTITION/ROWOFFSET (state has no offsets)."""
    selected = [
        r.name
        for item in query.select
        if isinstance(item, ast.SelectColumn)
        for r in column_refs(item.expression)
        if r.name in _PULL_DISALLOWED
    ]
    if selected:
        names = ", ".join(f"`{n}`" for n in dict.fromkeys(selected))
        raise KsqlStatementError(
            f"Pull queries don't support the following columns in SELECT clauses: {names}"
        )
    where = (
        [r.name for r in column_refs(query.where) if r.name in _PULL_DISALLOWED]
        if (query.where is not None)
        else []
    )
    if where:
        names = ", ".join(f"`{n}`" for n in dict.fromkeys(where))
        raise KsqlStatementError(
            f"Pull queries don't support the following columns in WHERE clauses: {names}"
        )


def _compile_where(expr: ast.Expression, scope: Scope) -> Evaluator:
    try:
        compiled = compile_expression(expr, scope, "WHERE")
    except KsqlStatementError as exc:
        if exc.message.startswith(("Cannot compare", "Comparison with NULL")):
            raise KsqlStatementError(
                f"Error in WHERE expression: {exc.message}\nStatement: {format_expression(expr)}"
            ) from exc
        raise
    if compiled.type.base not in ("BOOLEAN", "NULL"):
        raise KsqlStatementError(
            f"Type error in WHERE expression: Should evaluate to boolean but is "
            f"{format_expression(expr)} ({compiled.type}) instead."
        )
    return compiled.fn


def _first_aggregate(expr: ast.Expression) -> str | None:
    if isinstance(expr, ast.FunctionCall):
        if aggregates.is_aggregate(expr.name):
            return expr.name
        for a in expr.args:
            found = _first_aggregate(a)
            if found:
                return found
    return None


def _getter(i: int) -> Evaluator:
    return lambda row: row[i]


def plan_aggregate(
    catalog: Catalog, query: ast.Query, sink_name: str
) -> tuple[AggregatePlan, list[str]]:
    """Plan a CTAS aggregation; returns the plan and the sink's key column names."""
    _refuse_common(query, having=True)
    if query.limit is not None:
        raise KsqlStatementError("CREATE TABLE AS SELECT statements don't support LIMIT clause.")
    source, alias = resolve_source(catalog, query.from_)
    scope = source_scope(source, alias)
    group_exprs = list(query.group_by or ())
    for g in group_exprs:
        if contains_aggregate(g, aggregates.is_aggregate):
            name = _first_aggregate(g) or format_expression(g)
            raise KsqlStatementError(
                f"GROUP BY does not support aggregate functions: {name} is an aggregate function."
            )
    stripped = [strip_qualifier(g) for g in group_exprs]
    for i, g in enumerate(stripped):
        if g in stripped[:i]:
            raise KsqlStatementError(
                f"Duplicate GROUP BY expression: {format_expression(group_exprs[i])}"
            )
    group_compiled: list[Compiled] = [compile_expression(g, scope, "GROUP BY") for g in group_exprs]
    select: list[ast.SelectColumn] = []
    for item in query.select:
        if isinstance(item, ast.AllColumns):
            if item.source is not None and item.source not in scope.sources:
                raise KsqlStatementError(
                    f"'{item.source}' is not a valid stream/table name or alias."
                )
            select += [ast.SelectColumn(ast.ColumnRef(c.name)) for c in source.columns]
        elif isinstance(item, ast.StructAllFields):
            raise unsupported("struct field expansion (->*)")
        else:
            select.append(item)
    out = plan_outputs(select, query.having, group_exprs, [c.type for c in group_compiled], scope)
    if not group_exprs:
        raise unsupported("aggregation without GROUP BY")
    key_names = out.key_names
    value_cols = out.values
    missing = [format_expression(s) for s, n in zip(stripped, key_names, strict=True) if n is None]
    if missing:
        plural = "s" if len(missing) > 1 else ""
        listed = (
            missing[0] if len(missing) == 1 else ", ".join(missing[:-1]) + " and " + missing[-1]
        )
        raise KsqlStatementError(
            f"The query used to build `{sink_name}` must include the grouping expression{plural} "
            f"{listed} in its projection (eg, SELECT {', '.join(missing)}...)."
        )
    if not value_cols:
        raise KsqlStatementError("The projection contains no value columns.")
    if source.kind == "TABLE":
        # ksqlDB's SchemaKGroupedTable: functions without undo cannot follow a table's updates
        names = list(dict.fromkeys(c.aggregate.name for c in out.calls if c.aggregate.undo is None))
        if names:
            listed = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
            raise KsqlStatementError(
                f"The aggregation function{'s' if len(names) > 1 else ''} {listed} cannot be "
                "applied to a table source, only to a stream source."
            )
    key_columns = tuple(
        Column(n or "", c.type, key=True) for n, c in zip(key_names, group_compiled, strict=True)
    )
    seen: set[str] = set()
    for name, sql_type in value_cols:
        if name in seen or any(k.name == name for k in key_columns):
            raise KsqlStatementError(
                f"Duplicate value columns found in schema: `{name}` {sql_type}"
            )
        seen.add(name)
    sink_columns = key_columns + tuple(Column(n, t) for n, t in value_cols)
    where = _compile_where(query.where, scope) if query.where is not None else None
    plan = AggregatePlan(
        source=source,
        where=where,
        group_by=[c.fn for c in group_compiled],
        group_by_text=[format_expression(g) for g in group_exprs],
        calls=out.calls,
        value_layout=out.value_layout or [],
        sink_columns=sink_columns,
        group_by_columns=[_column_index(g, scope) for g in group_exprs],
        projection=None if out.value_layout is not None else out.value_fns,
        having=out.having,
    )
    return plan, [k.name for k in key_columns]


def _column_index(expr: ast.Expression, scope: Scope) -> int | None:
    """The row index `expr` reads when it is a plain column reference, else None."""
    if not isinstance(expr, ast.ColumnRef):
        return None
    return scope.resolve(expr, "SELECT")[0]


Projector = Callable[[list[object]], list[object] | None]


@dataclass
class ProjectionPlan:
    """Table -> table filter/projection; `key_order` indexes the source row's key columns."""

    source: DataSource
    where: Evaluator | None
    key_order: list[int]
    values: list[Evaluator]
    sink_columns: tuple[Column, ...]


def _and_list(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def check_projection(
    source: DataSource, keys: Mapping[str, object], has_values: bool, sink_name: str
) -> None:
    """ksqlDB's rules for a projection over a keyed source: every key column, some value."""
    if any(c.name not in keys for c in source.key_columns):
        missing = [c.name for c in source.key_columns]  # ksqlDB names every key column
        word = "column" if len(missing) == 1 else "columns"
        raise KsqlStatementError(
            f"The query used to build `{sink_name}` must include the key {word} "
            f"{_and_list(missing)} in its projection (eg, SELECT {', '.join(missing)}...)."
        )
    if not has_values:
        raise KsqlStatementError("The projection contains no value columns.")


def plan_projection(catalog: Catalog, query: ast.Query, sink_name: str) -> ProjectionPlan:
    """Plan `CREATE TABLE x AS SELECT ... FROM table [WHERE ...]` (no GROUP BY)."""
    _refuse_common(query)
    if query.limit is not None:
        raise KsqlStatementError("CREATE TABLE AS SELECT statements don't support LIMIT clause.")
    source, alias = resolve_source(catalog, query.from_)
    if source.kind == "STREAM":
        raise KsqlStatementError(
            "Invalid result type. Your SELECT query produces a STREAM. Please use CREATE STREAM "
            "AS SELECT statement instead."
        )
    scope = source_scope(source, alias)
    keys: dict[str, tuple[str, int]] = {}  # source key name -> (sink name, row index)
    values: list[tuple[str, Compiled]] = []
    taken: set[str] = set()
    for item in query.select:
        if isinstance(item, ast.AllColumns):
            for i, col in enumerate(source.columns):
                if col.key and col.name not in keys:
                    keys[col.name] = (col.name, i)
                elif not col.key:
                    values.append((col.name, Compiled(_getter(i), col.type)))
                taken.add(col.name)
            continue
        if isinstance(item, ast.StructAllFields):
            raise unsupported("struct field expansion (->*)")
        expr = item.expression
        if contains_aggregate(expr, aggregates.is_aggregate):
            raise unsupported("aggregate functions without GROUP BY")
        ref = source.column(expr.name) if isinstance(expr, ast.ColumnRef) else None
        name = item.alias or (ref.name if ref is not None else None) or _next_alias(taken)
        taken.add(name)
        if ref is not None and ref.key:
            if ref.name in keys:
                raise KsqlStatementError(
                    f"The projection contains a key column more than once: "
                    f"`{keys[ref.name][0]}` and `{name}`."
                )
            keys[ref.name] = (name, scope.columns[ref.name][0])
            continue
        values.append((name, compile_expression(expr, scope, "SELECT")))
    check_projection(source, keys, bool(values), sink_name)
    ordered = [keys[c.name] for c in source.key_columns]
    key_cols = tuple(Column(sink, source.columns[i].type, key=True) for sink, i in ordered)
    sink_columns = key_cols + tuple(Column(n, c.type) for n, c in values)
    names = [c.name for c in sink_columns]
    for i, n in enumerate(names):
        if n in names[:i]:
            raise KsqlStatementError(f"Duplicate value columns found in schema: `{n}`")
    where = _compile_where(query.where, scope) if query.where is not None else None
    return ProjectionPlan(
        source=source,
        where=where,
        key_order=[i for _, i in ordered],
        values=[c.fn for _, c in values],
        sink_columns=sink_columns,
    )
