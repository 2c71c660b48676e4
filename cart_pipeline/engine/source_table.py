"""CREATE SOURCE TABLE: a read-only table materialized by a hidden `CST_<name>_<n>` query.

As ksqlDB does, the table's own topic is read by a persistent query (`SELECT * FROM t EMIT
CHANGES` without a sink) whose state store serves pull queries. The query keeps only
state: it writes its changelog, never a sink topic.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cart_pipeline.engine.catalog.model import DataSource, QueryInfo
from cart_pipeline.engine.runtime.persistent import PersistentQuery, _encode_state, _produce
from cart_pipeline.engine.runtime.planner import plan_projection
from cart_pipeline.engine.runtime.state import StoredRow
from cart_pipeline.engine.sql import ast

if TYPE_CHECKING:
    from confluent_kafka import Producer

    from cart_pipeline.engine.ddl import Context


class SourceTableQuery(PersistentQuery):
    """A CTAS-like projection of the table onto itself, keeping state only."""

    def _emit(self, producer: Producer, key: bytes, row: StoredRow | None) -> None:
        state = None if row is None else _encode_state(row)
        ts = row.rowtime if row is not None else 0
        _produce(producer, self.changelog_topic, key, state, ts)


def materialize(ctx: Context, table: DataSource, text: str) -> str:
    """Register (and unless a dry run, start) the query materializing `table`; its id."""
    query_id = f"CST_{table.name}_{ctx.seq}"
    query = ast.Query(select=(ast.AllColumns(),), from_=ast.AliasedSource(table.name))
    plan = plan_projection(ctx.catalog, query, table.name)
    table.writer_query = query_id
    ctx.catalog.queries[query_id] = QueryInfo(
        query_id, text, table.name, table.topic, (table.name,)
    )
    if not ctx.dry_run:
        engine = ctx.engine
        # the whole topic is the table: always read from its beginning
        props = {**ctx.properties, "auto.offset.reset": "earliest"}
        running = SourceTableQuery(query_id, plan, table, engine.config, props, engine.plog)
        engine.queries[query_id] = running
        if not ctx.replay:
            running.start()
    return query_id
