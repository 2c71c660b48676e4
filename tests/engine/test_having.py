"""HAVING and computed projections of CTAS aggregations, beyond the conformance cases.

The conformance suite runs with ksqlDB's record cache off; these check the default (cache
on) path: the pull-query view and the sink topic drop a group HAVING hides, a hidden group
keeps aggregating, and its state survives a restart (the changelog keeps hidden groups).
"""

from __future__ import annotations

from typing import Any

import orjson
from confluent_kafka import Consumer, Producer

from cart_pipeline.engine.runtime.persistent import _decode_state, _encode_state
from cart_pipeline.engine.runtime.state import MemoryStore, StoredRow
from tests.engine.conftest import KsqlClient, PrivateEngine, wait_for


def _produce(bootstrap: str, topic: str, values: list[dict[str, Any]]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap})
    for value in values:
        producer.produce(topic, value=orjson.dumps(value))
    assert producer.flush(30) == 0


def _sink_records(bootstrap: str, topic: str, n: int) -> list[tuple[str, Any]]:
    """The first `n` records of the sink topic: (key, value or None for a tombstone)."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"{topic}-reader",
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
        }
    )
    consumer.subscribe([topic])
    got: list[tuple[str, Any]] = []
    try:

        def read() -> bool:
            for msg in consumer.consume(num_messages=100, timeout=0.5):
                if msg.error() is None:
                    value = msg.value()
                    key = msg.key() or b""
                    got.append((key.decode(), value and orjson.loads(value)))
            return len(got) >= n

        wait_for(read, timeout=60, interval=0)
    finally:
        consumer.close()
    return got


def test_store_view_hides_rows_and_state_round_trips() -> None:
    store = MemoryStore()
    store.put(b"a", StoredRow(("a",), (1,), 5, (1,), True))
    store.put(b"b", StoredRow(("b",), (2,), 6, (2,)))
    store.commit()
    assert store.get(b"a") is not None  # the query still sees the hidden group's state
    assert store.committed_get(b"a") is None  # readers do not
    assert [k for k, _ in store.committed_items()] == [b"b"]
    hidden = StoredRow(("a",), (1,), 5, (1,), True)
    assert _decode_state(_encode_state(hidden)) == hidden
    shown = StoredRow(("b",), (2,), 6, (2,))
    assert _decode_state(_encode_state(shown)) == shown


def test_having_hides_groups_from_pull_queries_and_sink(
    client: KsqlClient, unique_name: str, kafka_bootstrap: str
) -> None:
    stream, table = unique_name, f"{unique_name}_t"
    client.ksql(
        f"CREATE STREAM {stream} (item VARCHAR, qty INT) "
        f"WITH (kafka_topic='{stream}', value_format='json', partitions=1);"
        f"CREATE TABLE {table} AS SELECT item, SUM(qty) * 2 AS doubled, COUNT(*) AS n "
        f"FROM {stream} GROUP BY item HAVING SUM(qty) > 10;",
        {"auto.offset.reset": "earliest"},
    )

    def rows() -> list[list[Any]]:
        return sorted(client.pull(f"SELECT * FROM {table};")[1])

    _produce(kafka_bootstrap, stream, [{"ITEM": "a", "QTY": 11}, {"ITEM": "b", "QTY": 5}])
    wait_for(lambda: rows() == [["a", 22, 1]])
    _produce(kafka_bootstrap, stream, [{"ITEM": "a", "QTY": -5}, {"ITEM": "b", "QTY": 6}])
    wait_for(lambda: rows() == [["b", 22, 2]])  # a hidden, b shown
    assert client.pull(f"SELECT * FROM {table} WHERE item = 'a';")[1] == []
    _produce(kafka_bootstrap, stream, [{"ITEM": "a", "QTY": 5}])  # a: 6 + 5 = 11 again
    wait_for(lambda: rows() == [["a", 22, 3], ["b", 22, 2]])
    # the sink: a shown, then deleted (a tombstone), then shown again; b never deleted
    got = _sink_records(kafka_bootstrap, table.upper(), 4)
    assert [r for r in got if r[0] == "a"] == [
        ("a", {"DOUBLED": 22, "N": 1}),
        ("a", None),
        ("a", {"DOUBLED": 22, "N": 3}),
    ]
    assert [r for r in got if r[0] == "b"] == [("b", {"DOUBLED": 22, "N": 2})]


def test_hidden_groups_keep_their_state_across_a_restart(
    private_engine: PrivateEngine, unique_name: str, kafka_bootstrap: str
) -> None:
    private_engine.start()
    client = KsqlClient(private_engine.url)
    stream, table = unique_name, f"{unique_name}_t"
    try:
        client.ksql(
            f"CREATE STREAM {stream} (item VARCHAR) "
            f"WITH (kafka_topic='{stream}', value_format='json', partitions=1);"
            f"CREATE TABLE {table} AS SELECT item, COUNT(*) AS n FROM {stream} "
            "GROUP BY item HAVING COUNT(*) >= 3;",
            {"auto.offset.reset": "earliest"},
        )
        _produce(kafka_bootstrap, stream, [{"ITEM": "a"}, {"ITEM": "a"}, {"ITEM": "b"}])
        _produce(kafka_bootstrap, stream, [{"ITEM": "b"}, {"ITEM": "b"}])
        wait_for(lambda: client.pull(f"SELECT * FROM {table};")[1] == [["b", 3]])
        client.close()
        private_engine.stop()
        private_engine.start()
        client = KsqlClient(private_engine.url)
        _produce(kafka_bootstrap, stream, [{"ITEM": "a"}])  # a's two earlier records count
        wait_for(lambda: sorted(client.pull(f"SELECT * FROM {table};")[1]) == [["a", 3], ["b", 3]])
    finally:
        client.close()
