"""GROUP BY over a TABLE source with the record cache on (conformance runs it off).

Updates move a row's contribution between groups, deletes take it out, and the kept
contributions (hidden store rows) never show in pull queries or on the sink.
"""

from __future__ import annotations

from typing import Any

import orjson
from confluent_kafka import Producer

from cart_pipeline.engine.runtime.table_aggregate import contribution_key
from tests.engine.conftest import KsqlClient, wait_for


def test_contribution_keys_never_look_like_sink_keys() -> None:
    for source_key in (b"", b"a", b"ab", b"abcdef", b"\x00\x00", b'"x"', b"12345678"):
        key = contribution_key(source_key)
        assert len(key) not in (4, 8)
        assert key[0] == 0xFF  # never valid UTF-8
    keys = {contribution_key(bytes([i]) * n) for i in range(3) for n in range(1, 10)}
    assert len(keys) == 27  # one to one


def test_table_aggregation_updates_and_deletes(
    client: KsqlClient, unique_name: str, kafka_bootstrap: str
) -> None:
    source, table = unique_name, f"{unique_name}_t"
    client.ksql(
        f"CREATE TABLE {source} (id VARCHAR PRIMARY KEY, region VARCHAR, qty INT) "
        f"WITH (kafka_topic='{source}', value_format='json', partitions=1);"
        f"CREATE TABLE {table} AS SELECT region, COUNT(*) AS n, SUM(qty) AS total "
        f"FROM {source} GROUP BY region;",
        {"auto.offset.reset": "earliest"},
    )
    producer = Producer({"bootstrap.servers": kafka_bootstrap})

    def put(key: str, value: dict[str, Any] | None) -> None:
        data = None if value is None else orjson.dumps(value)
        producer.produce(source, key=key.encode(), value=data)
        assert producer.flush(30) == 0

    def rows() -> list[list[Any]]:
        return sorted(client.pull(f"SELECT * FROM {table};")[1])

    put("1", {"REGION": "r0", "QTY": 5})
    put("2", {"REGION": "r0", "QTY": 7})
    put("3", {"REGION": "r1", "QTY": 1})
    wait_for(lambda: rows() == [["r0", 2, 12], ["r1", 1, 1]])
    put("2", {"REGION": "r1", "QTY": 2})  # moves from r0 to r1
    wait_for(lambda: rows() == [["r0", 1, 5], ["r1", 2, 3]])
    put("1", None)  # a delete leaves the group at zero
    put("3", {"REGION": "r1", "QTY": 10})  # same group: undo 1, add 10
    wait_for(lambda: rows() == [["r0", 0, 0], ["r1", 2, 12]])
    assert client.pull(f"SELECT * FROM {table} WHERE region = 'r1';")[1] == [["r1", 2, 12]]
