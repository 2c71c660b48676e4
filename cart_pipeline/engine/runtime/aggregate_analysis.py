"""ksqlDB's rules for an aggregation's SELECT and HAVING, and their post-aggregation form.

`check_aggregate_rules` follows ksqlDB's AggregateAnalyzer: each SELECT expression must be a
GROUP BY expression, or refer (outside aggregate calls) only to GROUP BY expressions; HAVING
may use columns outside aggregates only when they are GROUP BY expressions.

`AggregateOutput` compiles SELECT and HAVING expressions against the aggregation's output
row `[group value 0, ..., aggregate result 0, ...]`: aggregate calls and GROUP BY
sub-expressions become references into that row (ksqlDB evaluates them the same way: the
grouped columns are constant within a group).
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from cart_pipeline.engine.errors import KsqlStatementError, unsupported
from cart_pipeline.engine.runtime import aggregates, functions
from cart_pipeline.engine.runtime.expressions import (
    Compiled,
    Evaluator,
    Scope,
    compile_expression,
    format_expression,
)
from cart_pipeline.engine.sql import ast
from cart_pipeline.engine.types import SqlType


@dataclass(frozen=True)
class AggregateCall:
    aggregate: aggregates.Aggregate
    argument: Evaluator | None
    column: int | None = None  # source row index when the argument is a plain column


def children(node: object) -> Iterator[ast.Expression]:
    """The direct sub-expressions of a node, in source order."""
    if not dataclasses.is_dataclass(node) or isinstance(node, ast.Location):
        return
    for f in dataclasses.fields(node):
        if f.name == "location":
            continue
        yield from _expressions_in(getattr(node, f.name))


def _expressions_in(value: object) -> Iterator[ast.Expression]:
    if isinstance(value, tuple):
        for item in value:
            yield from _expressions_in(item)
    elif isinstance(value, ast.WhenClause):
        yield from children(value)
    elif isinstance(value, _EXPRESSION_CLASSES):
        yield typing.cast(ast.Expression, value)


_EXPRESSION_CLASSES: tuple[type, ...] = typing.get_args(ast.Expression)


def rewrite(
    node: ast.Expression, replace: Callable[[ast.Expression], ast.Expression | None]
) -> ast.Expression:
    """`node` with every maximal sub-expression that `replace` maps replaced (top-down)."""
    hit = replace(node)
    if hit is not None:
        return hit
    changes: dict[str, object] = {}
    for f in dataclasses.fields(node):  # type: ignore[arg-type]
        if f.name == "location":
            continue
        value = getattr(node, f.name)
        new = _rewrite_value(value, replace)
        if new is not value:
            changes[f.name] = new
    return dataclasses.replace(node, **changes) if changes else node  # type: ignore[arg-type]


def _rewrite_value(
    value: object, replace: Callable[[ast.Expression], ast.Expression | None]
) -> object:
    if isinstance(value, tuple):
        items = tuple(_rewrite_value(v, replace) for v in value)
        return value if all(a is b for a, b in zip(items, value, strict=True)) else items
    if isinstance(value, ast.WhenClause):
        cond = _rewrite_value(value.condition, replace)
        result = _rewrite_value(value.result, replace)
        if cond is value.condition and result is value.result:
            return value
        return ast.WhenClause(cond, result)  # type: ignore[arg-type]
    if isinstance(value, _EXPRESSION_CLASSES):
        return rewrite(typing.cast(ast.Expression, value), replace)
    return value


def unqualify(expr: ast.Expression) -> ast.Expression:
    """`T.X` -> `X` everywhere (single-source queries: ksqlDB compares unqualified)."""
    return rewrite(
        expr, lambda e: ast.ColumnRef(e.name) if isinstance(e, ast.ColumnRef) and e.source else None
    )


def is_aggregate_call(expr: ast.Expression) -> bool:
    return isinstance(expr, ast.FunctionCall) and aggregates.is_aggregate(expr.name)


@dataclass
class _Visit:
    """One pass of ksqlDB's AggregateVisitor over an (unqualified) expression."""

    group_by: frozenset[ast.Expression]
    collect: Callable[[str | None, ast.ColumnRef], None]
    aggregates_found: list[ast.FunctionCall] = field(default_factory=list)
    in_group_by: ast.Expression | None = None
    in_aggregate: str | None = None
    seen_aggregate: bool = False

    def run(self, node: ast.Expression) -> None:
        entered = False
        if self.in_group_by is None and node in self.group_by:
            self.in_group_by, entered = node, True
        if isinstance(node, ast.ColumnRef):
            if self.in_group_by is None or self.seen_aggregate:
                self.collect(self.in_aggregate, node)
        elif is_aggregate_call(node):
            assert isinstance(node, ast.FunctionCall)
            if self.in_aggregate is not None:
                raise KsqlStatementError(
                    f"Aggregate functions can not be nested: {self.in_aggregate}"
                    f"({node.name.upper()}())"
                )
            self.seen_aggregate = True
            self.aggregates_found.append(node)
            self.in_aggregate = node.name.upper()
            for child in children(node):
                self.run(child)
            self.in_aggregate = None
        else:
            for child in children(node):
                self.run(child)
        if entered:
            self.in_group_by = None


def _collector(
    groups: frozenset[ast.Expression], into: list[ast.ColumnRef]
) -> Callable[[str | None, ast.ColumnRef], None]:
    """Collects column references outside aggregate calls that are not GROUP BY columns."""

    def collect(aggregate: str | None, ref: ast.ColumnRef) -> None:
        if aggregate is None and ref not in groups and ref not in into:
            into.append(ref)

    return collect


def check_aggregate_rules(
    select: list[ast.Expression], having: ast.Expression | None, group_by: list[ast.Expression]
) -> list[ast.FunctionCall]:
    """Raise ksqlDB's error for a SELECT/HAVING not derivable from the GROUP BY.

    Expressions are unqualified; returns the aggregate calls found, in order.
    """
    groups = frozenset(group_by)
    found: list[ast.FunctionCall] = []
    bad_selects: list[ast.Expression] = []
    for expr in select:
        params: list[ast.ColumnRef] = []
        visit = _Visit(groups, _collector(groups, params))
        visit.run(expr)
        found += visit.aggregates_found
        if expr not in groups and params:
            bad_selects.append(expr)
    bad_having: list[ast.ColumnRef] = []
    if having is not None:
        visit = _Visit(groups, _collector(groups, bad_having))
        visit.run(having)
        found += visit.aggregates_found
    if not found:
        raise KsqlStatementError(
            "GROUP BY requires aggregate functions in either the SELECT or HAVING clause."
        )
    if bad_selects:
        raise KsqlStatementError(
            "Non-aggregate SELECT expression(s) not part of GROUP BY: "
            + ", ".join(format_expression(e) for e in bad_selects)
            + "\nEither add the column(s) to the GROUP BY or remove them from the SELECT."
        )
    if bad_having:
        raise KsqlStatementError(
            "Non-aggregate HAVING expression not part of GROUP BY: "
            + ", ".join(format_expression(e) for e in bad_having)
            + "\nConsider switching the HAVING clause to a WHERE clause before the GROUP BY."
        )
    return found


class AggregateOutput:
    """Compiles expressions over the output row: group values, then aggregate results."""

    def __init__(self, group_by: list[ast.Expression], group_types: list[SqlType]) -> None:
        self.group_by = group_by
        self.group_types = group_types
        self.calls: list[ast.FunctionCall] = []  # one per distinct (unqualified) call
        self.call_types: list[SqlType] = []

    def add_call(self, call: ast.FunctionCall, result_type: SqlType) -> int:
        """Register an aggregate call; returns its index (an equal call is shared)."""
        if call in self.calls:
            return self.calls.index(call)
        self.calls.append(call)
        self.call_types.append(result_type)
        return len(self.calls) - 1

    def compile(self, expr: ast.Expression, clause: str) -> Compiled:
        """`expr` (unqualified, checked by `check_aggregate_rules`) over the output row."""
        columns: dict[str, tuple[int, SqlType]] = {}
        n_groups = len(self.group_by)

        def replace(e: ast.Expression) -> ast.Expression | None:
            if e in self.group_by:
                i = self.group_by.index(e)
                name = format_expression(e)
                columns[name] = (i, self.group_types[i])
                return ast.ColumnRef(name)
            if isinstance(e, ast.FunctionCall) and e in self.calls:
                j = self.calls.index(e)
                name = format_expression(e)
                columns[name] = (n_groups + j, self.call_types[j])
                return ast.ColumnRef(name)
            return None

        rewritten = rewrite(expr, replace)
        return compile_expression(rewritten, Scope(columns, frozenset()), clause)


def column_refs_deep(expr: ast.Expression) -> Iterator[ast.ColumnRef]:
    """Every column reference in `expr`, aggregate arguments included."""
    if isinstance(expr, ast.ColumnRef):
        yield expr
    for child in children(expr):
        yield from column_refs_deep(child)


def _refuse_unknown_functions(expr: ast.Expression) -> None:
    """Functions resolve before ksqlDB's aggregate rules apply: refuse ones we lack first."""
    if (
        isinstance(expr, ast.FunctionCall)
        and not aggregates.is_aggregate(expr.name)
        and expr.name.upper() not in functions.FUNCTIONS
    ):
        raise unsupported(f"function {expr.name.upper()}")
    for child in children(expr):
        _refuse_unknown_functions(child)


def _next_alias(taken: set[str]) -> str:
    i = 0
    while f"KSQL_COL_{i}" in taken:
        i += 1
    taken.add(f"KSQL_COL_{i}")
    return f"KSQL_COL_{i}"


@dataclass
class AggregateOutputs:
    """What an aggregation's SELECT and HAVING compile to."""

    key_names: list[str | None]  # per GROUP BY expression: its sink key column name
    values: list[tuple[str, SqlType]]  # sink value columns
    value_fns: list[Evaluator]  # each value column over the output row
    # ('agg', j) per value column when every one is a plain aggregate call, else None
    value_layout: list[tuple[str, int]] | None
    calls: list[AggregateCall]
    having: Evaluator | None


def plan_outputs(
    select: list[ast.SelectColumn],
    having: ast.Expression | None,
    group_exprs: list[ast.Expression],
    group_types: list[SqlType],
    scope: Scope,
) -> AggregateOutputs:
    """Check and compile an aggregation's SELECT and HAVING (ksqlDB's errors included)."""
    for item in select:
        for ref in column_refs_deep(item.expression):
            scope.resolve(ref, "SELECT")
    if having is not None:
        for ref in column_refs_deep(having):
            scope.resolve(ref, "HAVING")
    for expr in [item.expression for item in select] + ([having] if having else []):
        _refuse_unknown_functions(expr)
    groups = [unqualify(g) for g in group_exprs]
    exprs = [unqualify(item.expression) for item in select]
    having_u = unqualify(having) if having is not None else None
    found = check_aggregate_rules(exprs, having_u, groups)
    output = AggregateOutput(groups, group_types)
    calls: list[AggregateCall] = []
    for call in found:
        if call in output.calls:
            continue
        args = [compile_expression(a, scope, "SELECT") for a in call.args]
        agg = aggregates.bind(call.name, [c.type for c in args], call.star)
        argument: Evaluator | None = args[0].fn if args else None
        if agg.name == "COUNT" and call.args and isinstance(call.args[0], ast.Literal):
            argument = None if not isinstance(call.args[0], ast.NullLiteral) else argument
        column = None
        if argument is not None and len(call.args) == 1 and isinstance(call.args[0], ast.ColumnRef):
            column = scope.resolve(call.args[0], "SELECT")[0]
        calls.append(AggregateCall(agg, argument, column))
        output.add_call(call, agg.result_type)
    key_names: list[str | None] = [None] * len(groups)
    values: list[tuple[str, SqlType]] = []
    fns: list[Evaluator] = []
    layout: list[tuple[str, int]] | None = []
    taken: set[str] = set()
    for item, expr in zip(select, exprs, strict=True):
        plain = item.expression.name if isinstance(item.expression, ast.ColumnRef) else None
        name = item.alias or plain or _next_alias(taken)
        taken.add(name)
        if expr in groups:
            idx = groups.index(expr)
            if key_names[idx] is not None:
                raise KsqlStatementError(
                    f"The projection contains a key column more than once: `{key_names[idx]}` "
                    f"and `{name}`."
                )
            key_names[idx] = name
            continue
        compiled = output.compile(expr, "SELECT")
        values.append((name, compiled.type))
        fns.append(compiled.fn)
        if layout is not None and isinstance(expr, ast.FunctionCall) and expr in output.calls:
            layout.append(("agg", output.calls.index(expr)))
        else:
            layout = None
    having_fn = None
    if having_u is not None:
        compiled_having = output.compile(having_u, "HAVING")
        if compiled_having.type.base not in ("BOOLEAN", "NULL"):
            raise KsqlStatementError(
                f"Type error in HAVING expression: Should evaluate to boolean but is "
                f"{format_expression(having_u)} ({compiled_having.type}) instead."
            )
        having_fn = compiled_having.fn
    return AggregateOutputs(key_names, values, fns, layout, calls, having_fn)
