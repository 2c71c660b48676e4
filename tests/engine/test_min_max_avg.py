"""MIN, MAX and AVG as ksqlDB computes them, through the engine on the real broker.

What the conformance cases do not pin down: NULL arguments skipped (MIN/MAX NULL until the
first value, AVG 0.0), Java's orders (a String compares UTF-16 code units, so U+FFFF sorts
above an emoji; Double puts -0.0 below 0.0), AVG's INT sum wrapping at 32 bits as AverageUdaf's
does, and ksqlDB's refusal of MIN/MAX over a TABLE source.
"""

from __future__ import annotations

from typing import Any

import orjson
from confluent_kafka import Producer

from tests.engine.conftest import KsqlClient, wait_for


def _produce(bootstrap: str, topic: str, values: list[dict[str, Any]]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap})
    for value in values:
        producer.produce(topic, value=orjson.dumps(value))
    assert producer.flush(30) == 0


def test_min_max_avg_over_a_stream(
    client: KsqlClient, unique_name: str, kafka_bootstrap: str
) -> None:
    stream, table = unique_name, f"{unique_name}_t"
    client.ksql(
        f"CREATE STREAM {stream} (g VARCHAR, i INT, d DOUBLE, s VARCHAR) "
        f"WITH (kafka_topic='{stream}', value_format='json', partitions=1);"
        f"CREATE TABLE {table} AS SELECT g, MIN(i) AS min_i, MAX(i) AS max_i, AVG(i) AS avg_i, "
        "MIN(d) AS min_d, MAX(d) AS max_d, AVG(d) AS avg_d, MIN(s) AS min_s, MAX(s) AS max_s "
        f"FROM {stream} GROUP BY g;",
        {"auto.offset.reset": "earliest"},
    )
    big = 2**31 - 1
    _produce(
        kafka_bootstrap,
        stream,
        [
            {"G": "n", "I": None, "D": None, "S": None},  # only NULLs: MIN/MAX NULL, AVG 0.0
            {"G": "a", "I": 4, "D": 0.0, "S": "\uffff"},
            {"G": "a", "I": None, "D": -0.0, "S": "\U0001f600"},  # NULL i is skipped
            {"G": "a", "I": -2, "D": 2.5, "S": "b"},
            {"G": "w", "I": big},  # AVG's INT sum wraps as Java's int: (2^31-1) + 1 -> -2^31
            {"G": "w", "I": 1},
        ],
    )

    def rows() -> dict[str, list[Any]]:
        return {r[0]: r[1:] for r in client.pull(f"SELECT * FROM {table};")[1]}

    wait_for(lambda: set(rows()) == {"n", "a", "w"} and rows()["w"][2] != big)
    got = rows()
    assert got["n"] == [None, None, 0.0, None, None, 0.0, None, None]
    min_i, max_i, avg_i, min_d, max_d, avg_d, min_s, max_s = got["a"]
    assert (min_i, max_i, avg_i) == (-2, 4, 1.0)  # (4 + -2) / 2 values; the NULL not counted
    assert (min_d, max_d) == (-0.0, 2.5) and str(min_d) == "-0.0"
    assert avg_d == (0.0 + -0.0 + 2.5) / 3
    # Java: "\U0001f600" is the surrogate pair D83D DE00, below U+FFFF; Python's order differs
    assert (min_s, max_s) == ("b", "\uffff")
    assert got["w"][:3] == [1, big, float(-(2**31)) / 2]


def test_min_max_refused_over_a_table_source(client: KsqlClient, unique_name: str) -> None:
    table = unique_name
    client.ksql(
        f"CREATE TABLE {table} (id BIGINT PRIMARY KEY, f0 INT, f1 BIGINT) "
        f"WITH (kafka_topic='{table}', value_format='json', partitions=1);"
    )
    response = client.post_ksql(
        f"CREATE TABLE {table}_o AS SELECT f0, MIN(f1), MAX(f1), AVG(f1) FROM {table} GROUP BY f0;"
    )
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["error_code"] == 40001
    assert body["message"] == (
        "The aggregation functions MIN and MAX cannot be applied to a table source, "
        "only to a stream source."
    )
    # AVG can undo a value, so over a table it is accepted, as in ksqlDB
    ok = client.post_ksql(
        f"CREATE TABLE {table}_a AS SELECT f0, AVG(f1) AS a FROM {table} GROUP BY f0;"
    )
    assert ok.status_code == 200, ok.text
