"""Kafka client factories: the settings every engine client must share.

Producers partition keys like Java clients (murmur2) so both engines place a key
on the same partition; consumers read only committed data.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from cart_pipeline.engine.errors import KsqlStatementError


def producer(bootstrap: str, transactional_id: str | None = None, **extra: Any) -> Producer:
    conf: dict[str, Any] = {
        "bootstrap.servers": bootstrap,
        "partitioner": "murmur2_random",
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 5,
    }
    if transactional_id:
        conf["transactional.id"] = transactional_id
        conf["transaction.timeout.ms"] = 60000
    conf.update(extra)
    return Producer(conf)


def consumer(bootstrap: str, group_id: str | None = None, **extra: Any) -> Consumer:
    conf: dict[str, Any] = {
        "bootstrap.servers": bootstrap,
        "group.id": group_id or f"_cart-ksql-reader-{uuid.uuid4().hex}",
        "isolation.level": "read_committed",
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "enable.partition.eof": True,
    }
    conf.update(extra)
    return Consumer(conf)


def admin(bootstrap: str) -> AdminClient:
    return AdminClient({"bootstrap.servers": bootstrap})


def topic_partitions(client: AdminClient, topic: str, timeout: float = 10.0) -> int | None:
    """Partition count of `topic`, or None when it does not exist."""
    meta = client.list_topics(topic=topic, timeout=timeout)
    info = meta.topics.get(topic)
    if info is None or info.error is not None or not info.partitions:
        return None
    return len(info.partitions)


#: How long a "missing" topic is re-checked before it is reported missing (see below).
TOPIC_SETTLE_S = 2.5


def settled_topic_partitions(
    client: AdminClient, topic: str, settle_s: float = TOPIC_SETTLE_S
) -> int | None:
    """Like :func:`topic_partitions`, but "missing" is re-checked with fresh metadata requests
    for up to ``settle_s``: a topic created a moment ago (by another client) can be absent
    from, or leaderless in, the metadata a broker answers until the controller's update
    reaches it. Only a topic still missing after that is reported as None."""
    deadline = time.monotonic() + settle_s
    pause = 0.05
    while (partitions := topic_partitions(client, topic)) is None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return None
        time.sleep(min(pause, remaining))
        pause = min(pause * 2, 0.5)
    return partitions


def topic_replicas(client: AdminClient, topic: str, timeout: float = 10.0) -> int:
    meta = client.list_topics(topic=topic, timeout=timeout)
    info = meta.topics.get(topic)
    if info is None or not info.partitions:
        return 0
    return len(next(iter(info.partitions.values())).replicas)


def ensure_topic(
    client: AdminClient,
    topic: str,
    partitions: int,
    replicas: int = 1,
    config: dict[str, str] | None = None,
) -> None:
    """Create `topic` unless it exists; a differing partition count is ksqlDB's error."""
    existing = topic_partitions(client, topic)
    if existing is not None:
        if existing != partitions:
            raise KsqlStatementError(
                f"A Kafka topic with the name '{topic}' already exists, with different "
                f"partition/replica configuration than required. KSQL expects {partitions} "
                f"partitions (topic has {existing}), and {replicas} replication factor "
                f"(topic has {topic_replicas(client, topic)})."
            )
        return
    futures = client.create_topics(
        [
            NewTopic(
                topic, num_partitions=partitions, replication_factor=replicas, config=config or {}
            )
        ],
        operation_timeout=30,
    )
    try:
        futures[topic].result(timeout=30)
    except KafkaException as exc:
        if "TOPIC_ALREADY_EXISTS" not in str(exc):
            raise


def delete_topics(client: AdminClient, topics: list[str]) -> None:
    if not topics:
        return
    futures = client.delete_topics(topics, operation_timeout=30)
    for fut in futures.values():
        try:
            fut.result(timeout=30)
        except KafkaException as exc:
            if "UNKNOWN_TOPIC" not in str(exc):
                raise


def end_offsets(
    c: Consumer, topic: str, partitions: int, timeout: float = 10.0
) -> dict[int, tuple[int, int]]:
    """(low, high) watermark per partition."""
    return {
        p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout, cached=False)
        for p in range(partitions)
    }
