"""ksqlDB's validation of a pull query's WHERE clause against a materialized table.

ksqlDB rewrites the WHERE clause (BETWEEN into two comparisons, IN into ORed equalities, NOT
pushed down to the comparisons) into disjunctive normal form and checks every disjunct: a key
lookup needs, per disjunct, one comparison per key column against an expression that reads no
column. With ``ksql.query.pull.table.scan.enabled=false`` anything else is refused with
ksqlDB's message; with scans enabled the same rules only decide between lookup and scan (the
engine always scans, so only the errors ksqlDB raises either way are raised).
"""

from __future__ import annotations

from cart_pipeline.engine.catalog.model import Catalog, DataSource
from cart_pipeline.engine.errors import KsqlStatementError
from cart_pipeline.engine.runtime.aggregate_analysis import column_refs_deep
from cart_pipeline.engine.runtime.expressions import COMPARISON_NAMES, format_expression
from cart_pipeline.engine.sql import ast

_WINDOW_BOUNDS = ("WINDOWSTART", "WINDOWEND")
_BOUND_OPERATORS = ("=", ">", ">=", "<", "<=")
_NEGATED: dict[ast.ComparisonOperator, ast.ComparisonOperator] = {
    "=": "<>",
    "<>": "=",
    "<": ">=",
    ">=": "<",
    ">": "<=",
    "<=": ">",
    "IS DISTINCT FROM": "IS NOT DISTINCT FROM",
    "IS NOT DISTINCT FROM": "IS DISTINCT FROM",
}
# ksqlDB names the class of a LIKE pattern that is not a string literal
_JAVA_NODES = {
    "IntegerLiteral": "IntegerLiteral",
    "BigIntLiteral": "LongLiteral",
    "DoubleLiteral": "DoubleLiteral",
    "DecimalLiteral": "DecimalLiteral",
    "BooleanLiteral": "BooleanLiteral",
    "ColumnRef": "UnqualifiedColumnReferenceExp",
    "FunctionCall": "FunctionCall",
    "ArithmeticBinary": "ArithmeticBinaryExpression",
    "ArithmeticUnary": "ArithmeticUnaryExpression",
    "Cast": "Cast",
}
_SYNTAX_HELP = (
    " See https://cnfl.io/queries for more info.\n"
    "Add EMIT CHANGES if you intended to issue a push query."
)


def invalid_where(message: str) -> KsqlStatementError:
    """ksqlDB's error for a WHERE clause a pull query cannot serve (non-windowed source)."""
    return KsqlStatementError(
        message
        + "."
        + _SYNTAX_HELP
        + "\nPull queries require a WHERE clause that:"
        + "\n - includes a key equality expression, e.g. `SELECT * FROM X WHERE <key-column> = Y;`."
        + "\n - in the case of a multi-column key, is a conjunction of equality expressions that "
        "cover all key columns."
        + "\n - to support range expressions, e.g.,  SELECT * FROM X WHERE <key-column> < Y;`, "
        "range scans need to be enabled by setting ksql.query.pull.range.scan.enabled=true"
        + "\nIf more flexible queries are needed, , table scans can be enabled by setting "
        "ksql.query.pull.table.scan.enabled=true."
    )


def resolvable(source: DataSource, query: ast.Query) -> bool:
    """True when every column the query names exists: otherwise resolution fails first."""
    # WINDOWSTART/WINDOWEND only resolve over a windowed table, which the engine has none of
    known = {c.name for c in source.columns} | {"ROWTIME"}
    exprs: list[ast.Expression] = [query.where] if query.where is not None else []
    exprs += [i.expression for i in query.select if isinstance(i, ast.SelectColumn)]
    return all(r.name in known for e in exprs for r in column_refs_deep(e))


def validate_where(source: DataSource, where: ast.Expression, scan_enabled: bool) -> None:
    """Raise ksqlDB's error for a WHERE clause that is not a key lookup (see module doc)."""
    for disjunct in disjuncts(to_dnf(push_not(_expand(where)))):
        if _Validator(source, scan_enabled).check(disjunct):
            return  # ksqlDB stops at the first disjunct needing a scan


def _expand(e: ast.Expression) -> ast.Expression:
    """BETWEEN -> `>= AND <=`; IN -> ORed equalities (ksqlDB's pull-query rewrite)."""
    match e:
        case ast.Between(operand=o, lower=lo, upper=hi):
            return ast.LogicalBinary(
                "AND", ast.Comparison(">=", o, lo), ast.Comparison("<=", o, hi)
            )
        case ast.InList(operand=o, values=values) if values:
            out: ast.Expression = ast.Comparison("=", o, values[-1])
            for v in reversed(values[:-1]):
                out = ast.LogicalBinary("OR", ast.Comparison("=", o, v), out)
            return out
        case ast.LogicalBinary(operator=op, left=left, right=right):
            return ast.LogicalBinary(op, _expand(left), _expand(right))
        case ast.Not(operand=o):
            return ast.Not(_expand(o))
    return e


def push_not(e: ast.Expression, negated: bool = False) -> ast.Expression:
    """NOT pushed down to the comparisons, as ksqlDB's rewrite does it (a NOT over any other
    predicate is dropped by that rewrite; only the disjunct shapes matter here)."""
    match e:
        case ast.Not(operand=o):
            return push_not(o, not negated)
        case ast.LogicalBinary(operator=op, left=left, right=right):
            if negated:
                op = "OR" if op == "AND" else "AND"
            return ast.LogicalBinary(op, push_not(left, negated), push_not(right, negated))
        case ast.Comparison(operator=op, left=left, right=right) if negated:
            return ast.Comparison(_NEGATED[op], left, right)
        case ast.ColumnRef() | ast.BooleanLiteral() if negated:
            return ast.Not(e)
    return e


def to_dnf(e: ast.Expression) -> ast.Expression:
    """AND distributed over OR."""
    if not isinstance(e, ast.LogicalBinary):
        return e
    left, right = to_dnf(e.left), to_dnf(e.right)
    if e.operator == "AND":
        if isinstance(left, ast.LogicalBinary) and left.operator == "OR":
            return ast.LogicalBinary(
                "OR",
                to_dnf(ast.LogicalBinary("AND", left.left, right)),
                to_dnf(ast.LogicalBinary("AND", left.right, right)),
            )
        if isinstance(right, ast.LogicalBinary) and right.operator == "OR":
            return ast.LogicalBinary(
                "OR",
                to_dnf(ast.LogicalBinary("AND", left, right.left)),
                to_dnf(ast.LogicalBinary("AND", left, right.right)),
            )
    return ast.LogicalBinary(e.operator, left, right)


def disjuncts(e: ast.Expression) -> list[ast.Expression]:
    if isinstance(e, ast.LogicalBinary) and e.operator == "OR":
        return disjuncts(e.left) + disjuncts(e.right)
    return [e]


class _Validator:
    """One disjunct: is it a key lookup, does it need a scan, or is it refused."""

    def __init__(self, source: DataSource, scan_enabled: bool) -> None:
        self.source = source
        self.keys = [c.name for c in source.key_columns]
        self.scan_enabled = scan_enabled
        self.seen: list[str] = []
        self.keyed = False
        self.needs_scan = False

    def check(self, disjunct: ast.Expression) -> bool:
        """True when the disjunct needs a table scan (scans enabled); raises when refused."""
        self._process(disjunct)
        if self.needs_scan:
            return True
        if not self.keyed:
            return self._scan_or_raise(
                "WHERE clause missing key column for disjunct: " + format_expression(disjunct)
            )
        if self.seen and len(set(self.seen)) != len(self.keys):
            specified = ", ".join(f"`{k}`" for k in self.keys if k in self.seen)
            return self._scan_or_raise(
                "Multi-column sources must specify every key in the WHERE clause. "
                f"Specified: [{specified}] Expected: [{self._key_schema()}]"
            )
        return False

    def _scan_or_raise(self, message: str) -> bool:
        if self.scan_enabled:
            self.needs_scan = True
            return True
        raise invalid_where(message)

    def _key_schema(self) -> str:
        return ", ".join(c.schema_text() for c in self.source.key_columns)

    def _process(self, e: ast.Expression) -> None:
        match e:
            case ast.LogicalBinary(operator=op, left=left, right=right):
                if op != "AND":
                    self._scan_or_raise(
                        "Only AND expressions are supported: " + format_expression(e)
                    )
                self._process(left)
                self._process(right)
            case ast.Comparison():
                self._comparison(e)
            case ast.Like():
                self._like(e)
            case _:
                raise invalid_where("Unsupported expression in WHERE clause: " + _text(e))

    def _comparison(self, e: ast.Comparison) -> None:
        if isinstance(e.right, ast.ColumnRef):
            column, other = e.right, e.left
        elif isinstance(e.left, ast.ColumnRef):
            column, other = e.left, e.right
        else:
            self._scan_or_raise("A comparison must directly reference a key column")
            return
        if any(True for _ in column_refs_deep(other)):
            self._scan_or_raise(
                "A comparison must be between a key column and a resolvable expression"
            )
            return
        if column.name in _WINDOW_BOUNDS:
            if e.operator not in _BOUND_OPERATORS:
                raise invalid_where(
                    f"Unsupported {column.name} bounds: {COMPARISON_NAMES[e.operator]}"
                )
            raise invalid_where("Cannot use WINDOWSTART/WINDOWEND on non-windowed source")
        col = self.source.column(column.name)
        if col is None:
            if column.name == "ROWTIME":
                return
            raise invalid_where(f"Bound on non-existent column {column.name}")
        if not col.key:
            return
        if e.operator in ("<>", "IS DISTINCT FROM", "IS NOT DISTINCT FROM"):
            self._scan_or_raise(
                f"Bound on key columns '[{self._key_schema()}]' must currently be '='"
            )
        if col.name in self.seen and not self.scan_enabled:
            raise invalid_where(
                "A comparison condition on the key column cannot be combined with other "
                "comparisons such as an IN predicate"
            )
        self.seen.append(col.name)
        self.keyed = True

    def _like(self, e: ast.Like) -> None:
        if not isinstance(e.operand, ast.ColumnRef):
            self._scan_or_raise("Like condition must be between strings")
            return
        col = self.source.column(e.operand.name)
        if col is None:
            if e.operand.name == "ROWTIME":
                raise invalid_where(
                    "The column type for Like condition must be VARCHAR. The column type is BIGINT"
                )
            raise invalid_where(f"Like condition on non-existent column {e.operand.name}")
        if col.type.base != "STRING":
            raise invalid_where(
                "The column type for Like condition must be VARCHAR. "
                f"The column type is {col.type.base}"
            )
        if not isinstance(e.pattern, ast.StringLiteral | ast.NullLiteral):
            java = _JAVA_NODES.get(type(e.pattern).__name__, type(e.pattern).__name__)
            raise invalid_where(
                "Like condition on non-string pattern "
                f"io.confluent.ksql.execution.expression.tree.{java}"
            )


def _text(e: ast.Expression) -> str:
    return format_expression(e)


def check_before_planning(catalog: Catalog, query: ast.Query, props: dict[str, str]) -> None:
    """Validate a pull query's WHERE over a table where ksqlDB does: after resolving its
    columns, before compiling its expressions (unresolvable queries are left to the planner)."""
    if query.emit is not None or query.where is None or query.group_by is not None:
        return
    if query.window is not None or not isinstance(query.from_, ast.AliasedSource):
        return
    source = catalog.source(query.from_.name)
    if source is None or source.kind != "TABLE" or not resolvable(source, query):
        return
    validate_where(source, query.where, _enabled(props, "ksql.query.pull.table.scan.enabled"))


def require_lookup(source: DataSource, where: ast.Expression | None, props: dict[str, str]) -> None:
    """With table scans disabled, refuse a (validated) pull query that still needs one."""
    if _enabled(props, "ksql.query.pull.table.scan.enabled"):
        return
    kind = "TABLE_SCAN" if where is None else _plan_kind(source, where)
    if kind == "RANGE_SCAN" and not _enabled(props, "ksql.query.pull.range.scan.enabled"):
        kind = "TABLE_SCAN"
    if kind == "TABLE_SCAN":
        raise KsqlStatementError(
            "Query requires table scan to be enabled. Table scans can be enabled by setting "
            "ksql.query.pull.table.scan.enabled=true"
        )


def _enabled(props: dict[str, str], name: str) -> bool:
    return str(props.get(name, "true")).lower() != "false"


def _plan_kind(source: DataSource, where: ast.Expression) -> str:
    """KEY_LOOKUP, RANGE_SCAN or TABLE_SCAN from each disjunct's constraint on the keys."""
    constraints = [_constraint(source, d) for d in disjuncts(to_dnf(push_not(_expand(where))))]
    if "NONE" in constraints:
        return "TABLE_SCAN"
    if all(c == "=" for c in constraints):
        return "KEY_LOOKUP"
    if len(constraints) == 1:
        return "RANGE_SCAN"
    return "TABLE_SCAN"


def _constraint(source: DataSource, disjunct: ast.Expression) -> str:
    """'=' (key lookup), '<' (range on one STRING/BYTES key) or 'NONE', per disjunct."""
    ops: dict[str, str] = {}
    stack = [disjunct]
    while stack:
        e = stack.pop()
        if isinstance(e, ast.LogicalBinary):
            stack += [e.right, e.left]
            continue
        if not isinstance(e, ast.Comparison):
            continue
        column = e.right if isinstance(e.right, ast.ColumnRef) else e.left
        col = source.column(column.name) if isinstance(column, ast.ColumnRef) else None
        if col is None or not col.key:
            continue
        if ops.get(col.name) == "=" or (col.name in ops and e.operator != "="):
            continue  # the most selective constraint: an equality, else the first one
        ops[col.name] = e.operator
    if not ops:
        return "NONE"
    if len(ops) > 1:
        return "=" if all(op == "=" for op in ops.values()) else "NONE"
    name, op = next(iter(ops.items()))
    if op == "=":
        return "="
    col = source.column(name)
    if col is not None and col.type.base in ("STRING", "BYTES") and op in ("<", "<=", ">", ">="):
        return "<"
    return "NONE"
