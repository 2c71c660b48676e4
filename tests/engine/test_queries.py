"""Query semantics beyond the tutorial: table projections, record cache off, INSERT keys."""

from __future__ import annotations

import time
from typing import Any

import orjson
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

from tests.engine.conftest import KsqlClient, wait_for


def _records(bootstrap: str, topic: str, expect: int) -> list[tuple[Any, Any, int]]:
    """(key bytes, decoded value, timestamp) of committed records, bounded wait."""
    c = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"rd-{time.time_ns()}",
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
        }
    )
    c.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    out: list[tuple[Any, Any, int]] = []
    deadline = time.monotonic() + 30
    while len(out) < expect and time.monotonic() < deadline:
        for m in c.consume(100, 0.5):
            err = m.error()
            if err is not None and err.code() != KafkaError._PARTITION_EOF:
                raise AssertionError(str(err))
            if err is None:
                value = None if m.value() is None else orjson.loads(m.value() or b"null")
                out.append((m.key(), value, m.timestamp()[1]))
    c.close()
    return out


def test_table_projection_ctas(client: KsqlClient, unique_name: str) -> None:
    users, females = unique_name, f"{unique_name}_f"
    client.ksql(
        f"CREATE TABLE {users} (id BIGINT PRIMARY KEY, gender VARCHAR, region VARCHAR) "
        f"WITH (kafka_topic='{users}', value_format='json', partitions=1);"
        "SET 'auto.offset.reset'='earliest';"
        f"CREATE TABLE {females} AS SELECT * FROM {users} WHERE gender = 'f';"
    )
    for row in ("(1, 'm', 'w')", "(2, 'f', 'e')", "(3, 'f', 'n')"):
        client.ksql(f"INSERT INTO {users} (id, gender, region) VALUES {row};")

    def rows() -> list[list[Any]]:
        header, rows = client.pull(f"SELECT * FROM {females};")
        assert header["columnNames"] == ["ID", "GENDER", "REGION"]
        return sorted(rows)

    wait_for(lambda: rows() == [[2, "f", "e"], [3, "f", "n"]])
    client.ksql(f"INSERT INTO {users} (id, gender, region) VALUES (3, 'm', 'n');")
    wait_for(lambda: rows() == [[2, "f", "e"]])
    _, one = client.pull(f"SELECT region FROM {females} WHERE id = 2;")
    assert one == [["e"]]
    r = client.http.post("/query-stream", json={"sql": f"SELECT * FROM {users};", "properties": {}})
    assert r.status_code == 400
    assert "isn't queryable" in r.json()["message"]


def test_cache_off_emits_every_update(
    client: KsqlClient, unique_name: str, kafka_bootstrap: str
) -> None:
    stream, table = unique_name, f"{unique_name}_t"
    client.ksql(
        f"CREATE STREAM {stream} (item VARCHAR, qty INT) WITH (kafka_topic='{stream}', "
        "value_format='json', partitions=1);"
        f"CREATE TABLE {table} AS SELECT item, SUM(qty) AS total FROM {stream} GROUP BY item;",
        {"auto.offset.reset": "earliest", "ksql.streams.cache.max.bytes.buffering": "0"},
    )
    for qty in (1, 2, 3):
        client.ksql(f"INSERT INTO {stream} (item, qty) VALUES ('hat', {qty});")
    records = _records(kafka_bootstrap, table.upper(), 3)
    assert [(k, v) for k, v, _ in records] == [
        (b"hat", {"TOTAL": 1}),
        (b"hat", {"TOTAL": 3}),
        (b"hat", {"TOTAL": 6}),
    ]


def test_insert_values_key_and_rowtime(
    client: KsqlClient, unique_name: str, kafka_bootstrap: str
) -> None:
    client.ksql(
        f"CREATE STREAM {unique_name} (k STRING KEY, id INT, big BIGINT, d DOUBLE) "
        f"WITH (kafka_topic='{unique_name}', value_format='JSON', partitions=1);"
    )
    client.ksql(
        f"INSERT INTO {unique_name} (id, ROWTIME, k, big, d) VALUES (10, 1234, 'key', 5, 1);"
    )
    client.ksql(f"INSERT INTO {unique_name} (id) VALUES (11);")
    records = _records(kafka_bootstrap, unique_name, 2)
    assert records == [
        (b"key", {"ID": 10, "BIG": 5, "D": 1.0}, 1234),
        (None, {"ID": 11, "BIG": None, "D": None}, records[1][2]),
    ]
    r = client.post_ksql(f"INSERT INTO {unique_name} (k, id) VALUES ('a');")
    assert r.status_code == 400
    assert r.json()["message"] == (
        "Failed to prepare statement: Expected number columns and values to match: 2, 1"
    )


def test_pull_scan_disabled_allows_key_lookup_only(client: KsqlClient, unique_name: str) -> None:
    stream, table = unique_name, f"{unique_name}_t"
    client.ksql(
        f"CREATE STREAM {stream} (id STRING KEY, v INT) WITH (kafka_topic='{stream}', "
        "value_format='json', partitions=1);"
        f"CREATE TABLE {table} AS SELECT id, COUNT(*) AS n FROM {stream} GROUP BY id;",
        {"auto.offset.reset": "earliest"},
    )
    client.ksql(f"INSERT INTO {stream} (id, v) VALUES ('a', 1);")
    props = {"ksql.query.pull.table.scan.enabled": "false"}

    def lookup() -> Any:
        r = client.http.post(
            "/query-stream",
            json={"sql": f"SELECT * FROM {table} WHERE id = 'a';", "properties": props},
        )
        return r.status_code == 200 and r.text.splitlines()[1:] == ['["a",1]']

    wait_for(lookup)
    r = client.http.post(
        "/query-stream", json={"sql": f"SELECT * FROM {table} WHERE n > 0;", "properties": props}
    )
    assert r.status_code == 400
    assert "ksql.query.pull.table.scan.enabled" in r.json()["message"]
