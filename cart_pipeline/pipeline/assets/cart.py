"""The view: ksqlDB's ``current_shopping_cart``, the event log folded into each cart."""

import dagster as dg
from pydantic import Field

from cart_pipeline.pipeline.assets.events import shopping_cart_events_stream
from cart_pipeline.pipeline.ddl import CURRENT_SHOPPING_CART, apply_source, wait_until_running
from cart_pipeline.pipeline.failures import fails_clearly
from cart_pipeline.pipeline.resources import KsqlDBResource
from cart_pipeline.reconcile import query_consumer_group


class TableConfig(dg.Config):
    running_timeout_s: float = Field(
        default=60.0, description="How long to wait for the persistent query to run."
    )


@dg.asset(
    key="current_shopping_cart",
    deps=[shopping_cart_events_stream],
    group_name="cart",
    kinds={"ksqldb"},
    description="The tutorial's CREATE TABLE … AS SELECT (sql/current_shopping_cart.sql).",
)
@fails_clearly
def current_shopping_cart(
    context: dg.AssetExecutionContext, config: TableConfig, ksqldb: KsqlDBResource
) -> dg.MaterializeResult:
    with ksqldb.client() as ksql:
        applied = apply_source(ksql, CURRENT_SHOPPING_CART)
        query_id = wait_until_running(ksql, CURRENT_SHOPPING_CART.name, config.running_timeout_s)
        service_id = ksql.server_info().ksql_service_id
    verb = "created" if applied.created else "unchanged"
    context.log.info(f"table {CURRENT_SHOPPING_CART.name}: {verb}; query {query_id} running")
    return dg.MaterializeResult(
        metadata={
            "created": applied.created,
            "query_id": query_id,
            "sink_topic": applied.description.topic,
            "consumer_group": query_consumer_group(service_id, query_id),
            "sql": dg.MetadataValue.md(f"```sql\n{CURRENT_SHOPPING_CART.sql().strip()}\n```"),
        }
    )
