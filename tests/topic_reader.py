"""Read back what a test wrote: every record of a topic, by a fresh consumer, to the end."""

from __future__ import annotations

import time
import uuid

from confluent_kafka import Consumer, KafkaError, TopicPartition

from cart_pipeline.kafka_io import KafkaSettings

Records = list[tuple[bytes, bytes]]


def read_topic(bootstrap: str, topic: str, *, committed: bool = True, timeout_s: float = 30):
    """Every record a fresh reader sees from the beginning to the end (LSO for read_committed).

    End = partition EOF on all partitions; bounded by ``timeout_s``.
    """
    settings = KafkaSettings(bootstrap)
    consumer = Consumer(
        settings.consumer_config(
            f"verify-{uuid.uuid4().hex[:8]}",
            **{
                "isolation.level": "read_committed" if committed else "read_uncommitted",
                "enable.partition.eof": True,
            },
        )
    )
    try:
        metadata = consumer.list_topics(topic, timeout=10)
        partitions = len(metadata.topics[topic].partitions)
        consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
        records: Records = []
        at_end: set[int] = set()
        deadline = time.monotonic() + timeout_s
        while len(at_end) < partitions:
            assert time.monotonic() < deadline, f"{topic}: no EOF on all partitions in {timeout_s}s"
            for msg in consumer.consume(10_000, 0.5):
                err = msg.error()
                if err is not None:
                    assert err.code() == KafkaError._PARTITION_EOF, err
                    at_end.add(msg.partition())  # type: ignore[arg-type]
                    continue
                at_end.discard(msg.partition())  # type: ignore[arg-type]
                records.append((msg.key() or b"", msg.value() or b""))
        return records
    finally:
        consumer.close()
