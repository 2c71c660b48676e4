"""Catalog replay after restart and exactly-once results after kill -9 (private engines)."""

from __future__ import annotations

import random
import time
from typing import Any

import orjson
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Producer, TopicPartition

from tests.engine.conftest import KsqlClient, PrivateEngine, wait_for


def _totals(client: KsqlClient, table: str) -> dict[str, list[Any]]:
    _, rows = client.pull(f"SELECT * FROM {table};")
    return {row[0]: row[1:] for row in rows}


def _offsets(client: KsqlClient, table: str) -> tuple[int, int]:
    (desc,) = client.ksql(f"DESCRIBE {table} EXTENDED;")
    summaries = desc["sourceDescription"]["queryOffsetSummaries"]
    offsets = [o for s in summaries for t in s["topicSummaries"] for o in t["offsets"]]
    return sum(o["consumerOffset"] for o in offsets), sum(o["logEndOffset"] for o in offsets)


def _latest_committed(bootstrap: str, topic: str, partitions: int) -> dict[str, Any]:
    c = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"check-{time.time_ns()}",
            "isolation.level": "read_committed",
            "enable.partition.eof": True,
            "enable.auto.commit": False,
        }
    )
    c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
    latest: dict[str, Any] = {}
    done: set[int] = set()
    deadline = time.monotonic() + 60
    while len(done) < partitions and time.monotonic() < deadline:
        for msg in c.consume(500, 0.5):
            err = msg.error()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    done.add(msg.partition() or 0)
                continue
            latest[orjson.loads(msg.key() or b"null")] = orjson.loads(msg.value() or b"null")
    c.close()
    return latest


def test_catalog_replayed_after_restart(private_engine: PrivateEngine, unique_name: str) -> None:
    private_engine.start()
    stream, table = unique_name, f"{unique_name}_t"
    client = KsqlClient(private_engine.url)
    client.ksql(
        f"CREATE STREAM {stream} (item VARCHAR, qty INT) WITH (kafka_topic='{stream}', "
        "value_format='json', partitions=1);"
        "SET 'auto.offset.reset'='earliest';"
        f"CREATE TABLE {table} AS SELECT item, SUM(qty) AS total FROM {stream} GROUP BY item;"
    )
    client.ksql(f"INSERT INTO {stream} (item, qty) VALUES ('hat', 2);")
    wait_for(lambda: _totals(client, table) == {"hat": [2]})
    client.close()
    private_engine.stop()

    private_engine.start()
    client = KsqlClient(private_engine.url)
    (streams, tables, queries) = client.ksql("SHOW STREAMS; SHOW TABLES; SHOW QUERIES;")
    assert stream.upper() in {s["name"] for s in streams["streams"]}
    assert table.upper() in {t["name"] for t in tables["tables"]}
    assert [q["state"] for q in queries["queries"]] == ["RUNNING"]
    wait_for(lambda: _totals(client, table) == {"hat": [2]})
    client.ksql(f"INSERT INTO {stream} (item, qty) VALUES ('hat', 3);")
    wait_for(lambda: _totals(client, table) == {"hat": [5]})
    client.close()


def test_exactly_once_after_kill_9(
    private_engine: PrivateEngine, unique_name: str, kafka_bootstrap: str
) -> None:
    private_engine.start()
    stream, table = unique_name, f"{unique_name}_t"
    client = KsqlClient(private_engine.url)
    client.ksql(
        f"CREATE STREAM {stream} (id VARCHAR KEY, item VARCHAR, qty INT) WITH "
        f"(kafka_topic='{stream}', value_format='json', partitions=2);"
        "SET 'auto.offset.reset'='earliest';"
        "SET 'ksql.streams.commit.interval.ms'='300';"
        f"CREATE TABLE {table} WITH (KEY_FORMAT='JSON') AS SELECT item, SUM(qty) AS total, "
        f"COUNT(*) AS n FROM {stream} GROUP BY item;"
    )
    rng = random.Random(7)
    n_events = 60000
    expected: dict[str, list[int]] = {}
    producer = Producer(
        {
            "bootstrap.servers": kafka_bootstrap,
            "partitioner": "murmur2_random",
            "linger.ms": 20,
            "enable.idempotence": True,
        }
    )
    for i in range(n_events):
        item = f"item{rng.randrange(25)}"
        qty = rng.randrange(1, 6)
        total = expected.setdefault(item, [0, 0])
        total[0] += qty
        total[1] += 1
        while True:
            try:
                producer.produce(
                    stream, key=f"id{i}".encode(), value=orjson.dumps({"ITEM": item, "QTY": qty})
                )
                break
            except BufferError:
                producer.poll(0.1)
    assert producer.flush(60) == 0

    # kill -9 while the query is part-way through its input (bounded wait)
    consumed, end = wait_for(
        lambda: (o := _offsets(client, table))[0] > 0 and o, timeout=60, interval=0.05
    )
    private_engine.kill()
    client.close()
    assert end == n_events
    print(f"killed after {consumed} of {n_events} records were committed")

    private_engine.start()
    client = KsqlClient(private_engine.url)
    wait_for(lambda: _totals(client, table) == expected, timeout=120, interval=1.0)
    assert _offsets(client, table) == (n_events, n_events)
    # the sink topic's committed records agree: nothing double counted, nothing lost
    sink = _latest_committed(kafka_bootstrap, table.upper(), 2)
    assert sink == {item: {"TOTAL": t, "N": n} for item, (t, n) in expected.items()}
    client.close()
