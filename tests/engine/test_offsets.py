"""Committed offsets behind transactional producers: a caught-up query has lag 0.

Transactional producers leave a control record (commit/abort marker) after each
transaction. Kafka Streams commits the consumer's position, which moves past those
markers; committing `last record offset + 1` instead would leave every caught-up query
one offset behind the log end forever. These tests pin the Kafka Streams behaviour.
"""

from __future__ import annotations

from typing import Any

import orjson
from confluent_kafka import (
    ConsumerGroupTopicPartitions,
    IsolationLevel,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, OffsetSpec

from tests.engine.conftest import KsqlClient, wait_for

PARTITIONS = 2  # each transaction leaves one marker per partition


def _committed(admin: AdminClient, group: str, topic: str) -> dict[int, int]:
    futures = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)])
    result = futures[group].result(timeout=30)
    return {tp.partition: tp.offset for tp in result.topic_partitions if tp.topic == topic}


def _end_offsets(admin: AdminClient, topic: str) -> dict[int, int]:
    """The read_committed end (last stable offset) of each partition."""
    futures = admin.list_offsets(
        {TopicPartition(topic, p): OffsetSpec.latest() for p in range(PARTITIONS)},
        isolation_level=IsolationLevel.READ_COMMITTED,
        request_timeout=30,
    )
    return {tp.partition: f.result(timeout=30).offset for tp, f in futures.items()}


def _describe(client: KsqlClient, table: str) -> tuple[str, list[dict[str, Any]]]:
    (desc,) = client.ksql(f"DESCRIBE {table} EXTENDED;")
    (summary,) = desc["sourceDescription"]["queryOffsetSummaries"]
    offsets = [o for t in summary["topicSummaries"] for o in t["offsets"]]
    return summary["groupId"], offsets


def _total(client: KsqlClient, table: str) -> int:
    _, rows = client.pull(f"SELECT * FROM {table};")
    return sum(row[2] for row in rows)


def _transaction(bootstrap: str, topic: str, txn_id: str, n: int, *, commit: bool) -> None:
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "transactional.id": txn_id,
            "partitioner": "murmur2_random",
            "linger.ms": 5,
        }
    )
    producer.init_transactions(60)
    producer.begin_transaction()
    for i in range(n):
        value = {"CUSTOMER": f"c{i % 7}", "ITEM": f"i{i % 3}", "QTY": 1}
        producer.produce(topic, key=f"k{i}".encode(), value=orjson.dumps(value))
    assert producer.flush(60) == 0  # abort would purge records not yet sent
    if commit:
        producer.commit_transaction(60)
    else:
        producer.abort_transaction(60)


def test_caught_up_query_commits_past_transaction_markers(
    client: KsqlClient, unique_name: str, kafka_bootstrap: str
) -> None:
    stream, table = unique_name, f"{unique_name}_cart"
    client.ksql(
        f"CREATE STREAM {stream} (customer VARCHAR, item VARCHAR, qty INT) WITH "
        f"(kafka_topic='{stream}', value_format='json', partitions={PARTITIONS});"
        "SET 'auto.offset.reset'='earliest';"
        "SET 'ksql.streams.commit.interval.ms'='200';"
        f"CREATE TABLE {table} WITH (KEY_FORMAT='JSON') AS SELECT customer, item, "
        f"SUM(qty) AS total_qty FROM {stream} GROUP BY customer, item EMIT CHANGES;"
    )
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    group, _ = _describe(client, table)
    n = 2000
    _transaction(kafka_bootstrap, stream, f"{stream}-load", n, commit=True)
    # markers are written after commit_transaction returns: wait for the stable end
    ends = wait_for(lambda: (e := _end_offsets(admin, stream)) and sum(e.values()) == n + 2 and e)

    def caught_up() -> bool:
        return _committed(admin, group, stream) == ends

    wait_for(caught_up, timeout=60)
    wait_for(lambda: _total(client, table) == n)
    _, offsets = _describe(client, table)
    assert [o["logEndOffset"] - o["consumerOffset"] for o in offsets] == [0] * PARTITIONS

    # an aborted transaction adds no records, only markers: the position still moves on
    _transaction(kafka_bootstrap, stream, f"{stream}-aborted", 100, commit=False)
    ends = wait_for(lambda: (e := _end_offsets(admin, stream)) and sum(e.values()) == n + 104 and e)
    wait_for(caught_up, timeout=60)
    _, offsets = _describe(client, table)
    assert [o["logEndOffset"] - o["consumerOffset"] for o in offsets] == [0] * PARTITIONS
    assert _total(client, table) == n
