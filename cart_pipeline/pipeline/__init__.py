"""The Dagster layer: assets grouped by domain, resources, jobs, the schedule, and alerts."""

from cart_pipeline.pipeline.alerts import data_quality_alerts
from cart_pipeline.pipeline.assets.cart import current_shopping_cart
from cart_pipeline.pipeline.assets.events import (
    cart_events_load,
    shopping_cart_events_stream,
    shopping_cart_events_topic,
)
from cart_pipeline.pipeline.assets.reconciliation import cart_reconciliation
from cart_pipeline.pipeline.automation import (
    cart_pipeline_job,
    load_and_reconcile_job,
    load_schedule,
)
from cart_pipeline.pipeline.resources import (
    AlertWebhookResource,
    KafkaResource,
    KsqlDBResource,
    resources_from_env,
)

ASSETS = [
    shopping_cart_events_topic,
    shopping_cart_events_stream,
    cart_events_load,
    current_shopping_cart,
    cart_reconciliation,
]

__all__ = [
    "ASSETS",
    "AlertWebhookResource",
    "KafkaResource",
    "KsqlDBResource",
    "cart_pipeline_job",
    "data_quality_alerts",
    "load_and_reconcile_job",
    "load_schedule",
    "resources_from_env",
]
