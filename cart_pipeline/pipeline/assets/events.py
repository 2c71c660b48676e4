"""The event log: its Kafka topic, the ksqlDB stream over it, and the synthetic event loader."""

import os
import zlib
from typing import Any

import dagster as dg
from pydantic import Field

from cart_pipeline.kafka_io import Topics
from cart_pipeline.loader import GeneratorConfig
from cart_pipeline.loader.producer import LoadProgress, load_events, transactional_id_for
from cart_pipeline.pipeline.ddl import SHOPPING_CART_EVENTS, apply_source
from cart_pipeline.pipeline.failures import fails_clearly
from cart_pipeline.pipeline.resources import KafkaResource, KsqlDBResource

TOPIC = SHOPPING_CART_EVENTS.topic


class TopicConfig(dg.Config):
    partitions: int = Field(
        default=int(os.environ.get("CART_TOPIC_PARTITIONS", "1")),
        description="Partitions when the topic is created (the tutorial uses 1). An existing "
        "topic with another count fails the materialization; it is never changed.",
    )
    replication: int = Field(default=int(os.environ.get("CART_TOPIC_REPLICATION", "1")))


@dg.asset(
    key="shopping_cart_events_topic",
    group_name="events",
    kinds={"kafka"},
    description="The event log: one record per cart change, keyed by customer.",
)
@fails_clearly
def shopping_cart_events_topic(
    context: dg.AssetExecutionContext, config: TopicConfig, kafka: KafkaResource
) -> dg.MaterializeResult:
    topics = Topics(kafka.settings())
    info = topics.ensure(TOPIC, config.partitions, config.replication)
    context.log.info(
        f"topic {TOPIC}: {'created' if info.created else 'verified'} "
        f"({info.partitions} partitions, replication {info.replication})"
    )
    end = topics.end_offsets(TOPIC)
    return dg.MaterializeResult(
        metadata={
            "topic": TOPIC,
            "created": info.created,
            "partitions": info.partitions,
            "replication": info.replication,
            "end_offsets": {str(p): o for p, o in end.items()},
            "events_in_topic": sum(end.values()),
        }
    )


@dg.asset(
    key="shopping_cart_events_stream",
    deps=[shopping_cart_events_topic],
    group_name="events",
    kinds={"ksqldb"},
    description="The tutorial's CREATE STREAM over the event log (sql/shopping_cart_events.sql).",
)
@fails_clearly
def shopping_cart_events_stream(
    context: dg.AssetExecutionContext, ksqldb: KsqlDBResource
) -> dg.MaterializeResult:
    with ksqldb.client() as ksql:
        applied = apply_source(ksql, SHOPPING_CART_EVENTS)
    context.log.info(f"stream {SHOPPING_CART_EVENTS.name}: "
                     f"{'created' if applied.created else 'unchanged'}")  # fmt: skip
    return dg.MaterializeResult(
        metadata={
            "created": applied.created,
            "stream": applied.description.name,
            "topic": applied.description.topic,
            "value_format": applied.description.value_format,
            "sql": dg.MetadataValue.md(f"```sql\n{SHOPPING_CART_EVENTS.sql().strip()}\n```"),
        }
    )


class LoadConfig(dg.Config):
    events: int = Field(default=10_000, description="Number of events to write.")
    seed: int | None = Field(
        default=None, description="Same seed, same events. Default: derived from the run id."
    )
    customers: int = 500
    items: int = 200
    skew: float = Field(default=1.1, description="Zipf exponent of popularity (0 = uniform).")
    remove_probability: float = 0.2
    rate_limit: float = Field(default=0.0, description="Events per second; 0 = no limit.")
    malformed_share: float = Field(
        default=0.0, description="Share of deliberately malformed records (data-quality drills)."
    )


@dg.asset(
    key="cart_events_load",
    deps=[shopping_cart_events_stream],
    group_name="events",
    kinds={"python", "kafka"},
    description="Synthetic cart events (Faker customers and items) written in one transaction.",
)
@fails_clearly
def cart_events_load(
    context: dg.AssetExecutionContext, config: LoadConfig, kafka: KafkaResource
) -> dg.MaterializeResult:
    seed = config.seed if config.seed is not None else zlib.crc32(context.run.run_id.encode())
    generator_config = GeneratorConfig(
        n_events=config.events, seed=seed, n_customers=config.customers,
        n_items=config.items, skew=config.skew,
        remove_probability=config.remove_probability, malformed_share=config.malformed_share,
    )  # fmt: skip

    def progress(p: LoadProgress) -> None:
        context.log.info(str(p))

    result = load_events(
        kafka.settings(),
        TOPIC,
        generator_config,
        # Stable per run: a retry of this run fences a half-done predecessor.
        transactional_id=transactional_id_for(TOPIC, seed, context.run.run_id),
        rate_limit=config.rate_limit,
        progress=progress,
        progress_every=max(1_000, config.events // 10),
    )
    summary: dict[str, Any] = result.summary()
    return dg.MaterializeResult(
        metadata={
            "events_written": result.events,
            "well_formed": result.well_formed,
            "malformed_written": result.malformed,
            "malformed_by_kind": summary["malformed_by_kind"],
            "events_per_s": round(result.events_per_s, 1),
            "seed": seed,
            "elapsed_s": round(result.elapsed_s, 3),
            "offset_ranges": summary["partitions"],
        }
    )
