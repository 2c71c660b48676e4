"""Pull-query WHERE rules with table scans disabled, and CAST between primitive types."""

from __future__ import annotations

from typing import Any

import orjson

from tests.engine.conftest import KsqlClient, wait_for

NO_SCAN = {"ksql.query.pull.table.scan.enabled": "false"}


def _query(client: KsqlClient, sql: str, props: dict[str, Any]) -> tuple[int, Any]:
    r = client.http.post("/query-stream", json={"sql": sql, "properties": props})
    if r.status_code != 200:
        return r.status_code, r.json()["message"]
    return 200, [orjson.loads(line) for line in r.text.splitlines()[1:] if line.strip()]


def test_pull_where_rules_without_table_scans(client: KsqlClient, unique_name: str) -> None:
    stream, table = unique_name, f"{unique_name}_t"
    client.ksql(
        f"CREATE STREAM {stream} (id STRING KEY, v INT) WITH (kafka_topic='{stream}', "
        "value_format='json', partitions=1);"
        f"CREATE TABLE {table} AS SELECT id, COUNT(*) AS n FROM {stream} GROUP BY id;",
        {"auto.offset.reset": "earliest"},
    )
    client.ksql(f"INSERT INTO {stream} (id, v) VALUES ('a', 1);")
    client.ksql(f"INSERT INTO {stream} (id, v) VALUES ('b', 2);")
    wait_for(lambda: _query(client, f"SELECT * FROM {table};", {})[1] == [["a", 1], ["b", 1]])

    # key lookups: a resolvable key expression, IN plus other filters, a negated inequality
    for where, rows in [
        ("id = 'a' + ''", [["a", 1]]),
        ("id IN ('a', 'b') AND n > 0", [["a", 1], ["b", 1]]),
        ("NOT (id <> 'b')", [["b", 1]]),
        ("id > 'a'", [["b", 1]]),  # a range scan over a STRING key (range scans enabled)
    ]:
        status, got = _query(client, f"SELECT * FROM {table} WHERE {where};", NO_SCAN)
        assert (status, sorted(got)) == (200, rows), where

    for where, props, message in [
        ("id <> 'a'", NO_SCAN, "Bound on key columns '[`ID` STRING KEY]' must currently be '='. "),
        ("id = 'a' OR n > 0", NO_SCAN, "WHERE clause missing key column for disjunct: (N > 0). "),
        ("id = n", NO_SCAN, "A comparison must be between a key column and a resolvable "),
        ("'a' = 'a'", NO_SCAN, "A comparison must directly reference a key column. "),
        ("id IS NULL", NO_SCAN, "Unsupported expression in WHERE clause: (ID IS NULL). "),
        (
            "id > 'a'",
            {**NO_SCAN, "ksql.query.pull.range.scan.enabled": "false"},
            "Query requires table scan to be enabled. Table scans can be enabled by setting "
            "ksql.query.pull.table.scan.enabled=true",
        ),
    ]:
        status, got = _query(client, f"SELECT * FROM {table} WHERE {where};", props)
        assert status == 400, where
        assert got.startswith(message), (where, got)
    status, got = _query(client, f"SELECT * FROM {table};", NO_SCAN)
    assert (status, got.startswith("Query requires table scan to be enabled.")) == (400, True)

    # with scans enabled the same clauses scan; only type errors of LIKE are refused
    status, got = _query(client, f"SELECT * FROM {table} WHERE id = 'a' OR n > 5;", {})
    assert (status, got) == (200, [["a", 1]])
    status, got = _query(client, f"SELECT * FROM {table} WHERE n LIKE 'x';", {})
    assert status == 400
    assert got.startswith(
        "The column type for Like condition must be VARCHAR. The column type is BIGINT. "
    )


def test_cast_between_primitive_types(client: KsqlClient, unique_name: str) -> None:
    client.ksql(
        f"CREATE STREAM {unique_name} (s STRING, d DOUBLE, b BIGINT, i INT, f BOOLEAN) "
        f"WITH (kafka_topic='{unique_name}', value_format='JSON', partitions=1);"
    )
    client.ksql(
        f"INSERT INTO {unique_name} (s, d, b, i, f) VALUES (' -12 ', -2.75, 4294967297, 7, true);"
    )
    client.ksql(f"INSERT INTO {unique_name} (s, d, b, i, f) VALUES ('1x', 1e10, -1, -7, false);")
    header, rows = client.push(
        f"SELECT CAST(s AS INT), CAST(s AS BIGINT), CAST(d AS INT), CAST(d AS BIGINT), "
        f"CAST(b AS INT), CAST(i AS BIGINT), CAST(i AS DOUBLE), CAST(i AS STRING), "
        f"CAST(d AS STRING), CAST(f AS STRING), CAST(NULL AS INT) FROM {unique_name} "
        "EMIT CHANGES;",
        {"auto.offset.reset": "earliest"},
        until=lambda rows: len(rows) >= 2,
    )
    assert header["columnTypes"] == [
        "INTEGER", "BIGINT", "INTEGER", "BIGINT", "INTEGER", "BIGINT", "DOUBLE", "STRING",
        "STRING", "STRING", "INTEGER",
    ]  # fmt: skip
    assert rows == [
        [-12, -12, -2, -2, 1, 7, 7.0, "7", "-2.75", "true", None],
        [None, None, 2147483647, 10000000000, -1, -7, -7.0, "-7", "1.0E10", "false", None],
    ]
    r = client.post_ksql(
        f"CREATE STREAM {unique_name}_x AS SELECT CAST(s AS DOUBLE) FROM {unique_name};"
    )
    assert r.status_code == 400
    assert "Unsupported by the embedded engine: CAST from STRING to DOUBLE" in r.json()["message"]
