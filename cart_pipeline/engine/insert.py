"""INSERT INTO ... VALUES: validated like ksqlDB, produced synchronously.

The record is acknowledged by the broker (acks=all) before the request answers, so a
pull or push query sent after the response sees it once the query has processed it.
"""

from __future__ import annotations

import threading
import time

from confluent_kafka import KafkaError, Producer

from cart_pipeline.engine import kafka
from cart_pipeline.engine.catalog.model import Catalog, DataSource
from cart_pipeline.engine.errors import KsqlError, KsqlStatementError, unsupported
from cart_pipeline.engine.runtime.expressions import (
    NULL_TYPE,
    Scope,
    compile_expression,
    format_expression,
)
from cart_pipeline.engine.runtime.serde import key_serde, value_serde
from cart_pipeline.engine.sql import ast
from cart_pipeline.engine.types import SqlType

_EMPTY_SCOPE = Scope({}, frozenset())


def _coerce(
    value: object, from_type: SqlType, column: str, to_type: SqlType, expr: ast.Expression
) -> object:
    if value is None:
        return None
    if from_type in (to_type, NULL_TYPE):
        return value
    widen = {("INTEGER", "BIGINT"), ("INTEGER", "DOUBLE"), ("BIGINT", "DOUBLE")}
    if (from_type.base, to_type.base) in widen:
        return float(value) if to_type.base == "DOUBLE" else value  # type: ignore[arg-type]
    raise KsqlStatementError(
        f"Expected type {to_type} for field `{column}` but got "
        f"{format_expression(expr)}({from_type})"
    )


def _decimal_literal_as_double(expr: ast.Expression, column: object) -> ast.Expression:
    """ksqlDB widens a DECIMAL literal such as ``12.50`` into a DOUBLE column on INSERT.

    DECIMAL columns themselves are not supported yet; this covers the common case of a
    plain number with a fraction written into a DOUBLE column.
    """
    col_type = getattr(column, "type", None)
    if col_type is None or col_type.base != "DOUBLE":
        return expr
    match expr:
        case ast.DecimalLiteral(value=v):
            return ast.DoubleLiteral(float(v))
        case ast.ArithmeticUnary(operator=op, operand=ast.DecimalLiteral(value=v)):
            return ast.DoubleLiteral(-float(v) if op == "-" else float(v))
    return expr


def _case_hint(catalog: Catalog, target: str) -> None:
    """ksqlDB's error when the name matches an existing source only case-insensitively."""
    other = next((n for n in catalog.sources if n.upper() == target.upper()), None)
    if other is None:
        return
    if target.isupper():
        raise KsqlStatementError(
            f"Cannot insert values into an unknown stream/table: `{target}`\nDid you mean "
            f'"{other}"? Hint: wrap the source name in double quotes to make it case-sensitive.'
        )
    raise KsqlStatementError(
        f"Cannot insert values into an unknown stream/table: `{target}`\nDid you mean "
        f"{other}? Hint: try removing double quotes from the source name."
    )


class Inserter:
    """Owns the producer used by INSERT VALUES (one per engine)."""

    def __init__(self, bootstrap: str) -> None:
        self._producer: Producer = kafka.producer(bootstrap)
        self._lock = threading.Lock()

    def prepare(
        self, catalog: Catalog, stmt: ast.InsertValues
    ) -> tuple[DataSource, bytes | None, bytes | None, int]:
        """Validate and serialize; returns (source, key, value, timestamp)."""
        source = catalog.source(stmt.target)
        if source is None:
            _case_hint(catalog, stmt.target)
            raise KsqlStatementError(
                f"Failed to prepare statement: '{stmt.target}' is not a valid stream/table "
                "name or alias."
            )
        if source.writer_query is not None:
            raise KsqlStatementError(f"Cannot insert values into read-only table: {source.name}")
        if source.is_source:
            raise KsqlStatementError(
                f"Cannot insert values into read-only {source.kind.lower()}: {source.name}"
            )
        names = list(stmt.columns) or [c.name for c in source.columns]
        if len(names) != len(stmt.values):
            raise KsqlStatementError(
                "Failed to prepare statement: Expected number columns and values to match: "
                f"{len(names)}, {len(stmt.values)}"
            )
        given: dict[str, object] = {}
        rowtime: int | None = None
        for name, expr in zip(names, stmt.values, strict=True):
            if name in ("ROWPARTITION", "ROWOFFSET"):
                raise KsqlStatementError(f"Inserting into column `{name}` is not allowed.")
            expr = _decimal_literal_as_double(expr, source.column(name))
            try:
                compiled = compile_expression(expr, _EMPTY_SCOPE, "VALUES")
            except KsqlStatementError as exc:
                if "is not a valid stream/table name" in exc.message:
                    raise KsqlStatementError(f"Failed to prepare statement: {exc.message}") from exc
                if "cannot be resolved" in exc.message:
                    raise unsupported("non-literal expressions in INSERT VALUES") from exc
                raise
            value = compiled.fn([])
            if name == "ROWTIME":
                rowtime = int(value) if value is not None else None  # type: ignore[call-overload]
                continue
            col = source.column(name)
            if col is None:
                raise KsqlStatementError(f"Column name `{name}` does not exist.")
            given[name] = _coerce(value, compiled.type, name, col.type, expr)
        if source.kind == "TABLE" and any(given.get(c.name) is None for c in source.key_columns):
            raise KsqlStatementError(
                f"Failed to insert values into '{source.name}'. Value for primary key column(s) "
                f"{', '.join(c.name for c in source.key_columns)} is required for tables"
            )
        key = key_serde(source.key_format, source.key_columns).serialize(
            [given.get(c.name) for c in source.key_columns]
        )
        value = value_serde(
            source.value_format, source.value_columns, source.value_features
        ).serialize([given.get(c.name) for c in source.value_columns])
        ts = rowtime if rowtime is not None else int(time.time() * 1000)
        return source, key, value, ts

    def send(self, topic: str, key: bytes | None, value: bytes | None, ts: int) -> None:
        errors: list[KafkaError] = []

        def on_delivery(err: KafkaError | None, _msg: object) -> None:
            if err is not None:
                errors.append(err)

        with self._lock:
            self._producer.produce(
                topic, key=key, value=value, timestamp=ts, on_delivery=on_delivery
            )
            remaining = self._producer.flush(30)
        if errors or remaining:
            raise KsqlError(
                f"Failed to insert values into '{topic}': {errors[0] if errors else 'timed out'}"
            )
