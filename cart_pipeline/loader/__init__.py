"""Synthetic shopping-cart event generator for the ``shopping_cart_events`` topic.

Pure Python + numpy, no Kafka: produces pre-encoded ``(key, value)`` batches fast enough to
saturate a producer, with the expected ``current_shopping_cart`` totals as the truth.
"""

from cart_pipeline.loader.config import GeneratorConfig
from cart_pipeline.loader.generator import (
    CartEventGenerator,
    EventBatch,
    GeneratedRun,
    GenerationStats,
    generate,
)
from cart_pipeline.loader.malformed import MALFORMED_KINDS, MalformedKind
from cart_pipeline.loader.pools import EDGE_CUSTOMERS, EDGE_ITEMS

__all__ = [
    "EDGE_CUSTOMERS",
    "EDGE_ITEMS",
    "MALFORMED_KINDS",
    "CartEventGenerator",
    "EventBatch",
    "GeneratedRun",
    "GenerationStats",
    "GeneratorConfig",
    "MalformedKind",
    "generate",
]
