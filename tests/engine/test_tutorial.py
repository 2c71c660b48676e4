"""The tutorial, sent as written, against the session engine over real HTTP and Kafka."""

from __future__ import annotations

from typing import Any

from tests.engine.conftest import KsqlClient, wait_for

INSERTS = [
    "INSERT INTO {s} (customer, item, qty) VALUES ('bob', 'pants', 2);",
    "INSERT INTO {s} (customer, item, qty) VALUES ('bob', 'pants', -1);",
    "INSERT INTO {s} (customer, item, qty) VALUES ('bob', 't-shirts', 1);",
    "INSERT INTO {s} (customer, item, qty) VALUES ('bob', 'hats', 1);",
    "INSERT INTO {s} (customer, item, qty) VALUES ('alice', 'pants', 1);",
]
BOB = {("bob", "pants"): 1, ("bob", "t-shirts"): 1, ("bob", "hats"): 1}


def _setup(client: KsqlClient, name: str) -> tuple[str, str]:
    stream, table = f"{name}_events", f"{name}_cart"
    entities = client.ksql(
        "SET 'auto.offset.reset'='earliest';\n"
        "SET 'ksql.streams.commit.interval.ms'='3000';\n"
        f"CREATE STREAM {stream} (customer VARCHAR, item VARCHAR, qty INT) "
        f"WITH (kafka_topic='{stream}', value_format='json', partitions=1);\n"
        f"CREATE TABLE {table} WITH (KEY_FORMAT='JSON') AS SELECT customer, item, "
        f"SUM(qty) as total_qty FROM {stream} GROUP BY customer, item EMIT CHANGES;"
    )
    assert [e["@type"] for e in entities] == ["currentStatus", "currentStatus"]
    created, ctas = entities
    assert created["commandId"] == f"stream/`{stream.upper()}`/create"
    assert created["commandStatus"] == {
        "status": "SUCCESS",
        "message": "Stream created",
        "queryId": None,
    }
    query_id = ctas["commandStatus"]["queryId"]
    assert query_id == f"CTAS_{table.upper()}_{ctas['commandSequenceNumber']}"
    assert ctas["commandStatus"]["message"] == f"Created query with ID {query_id}"
    for stmt in INSERTS:
        assert client.ksql(stmt.format(s=stream)) == []
    return stream, table


def _bob(rows: list[list[Any]]) -> dict[tuple[str, str], int]:
    latest: dict[tuple[str, str], int] = {}
    for customer, item, qty in rows:
        latest[(customer, item)] = qty
    return {k: v for k, v in latest.items() if k[0] == "bob"}


def test_tutorial_pull_query(client: KsqlClient, unique_name: str) -> None:
    _, table = _setup(client, unique_name)

    def bob_cart() -> dict[tuple[str, str], int] | None:
        header, rows = client.pull(f"SELECT * FROM {table} WHERE customer = 'bob';")
        assert header["columnNames"] == ["CUSTOMER", "ITEM", "TOTAL_QTY"]
        assert header["columnTypes"] == ["STRING", "STRING", "INTEGER"]
        cart = _bob(rows)
        return cart if cart == BOB else None

    wait_for(bob_cart, timeout=40)


def test_tutorial_push_queries(client: KsqlClient, unique_name: str) -> None:
    stream, table = _setup(client, unique_name)
    header, rows = client.push(
        f"SELECT * FROM {stream} EMIT CHANGES;",
        {"auto.offset.reset": "earliest"},
        until=lambda rows: len(rows) >= 5,
    )
    assert header["queryId"].startswith(f"transient_{stream.upper()}_")
    assert rows == [
        ["bob", "pants", 2],
        ["bob", "pants", -1],
        ["bob", "t-shirts", 1],
        ["bob", "hats", 1],
        ["alice", "pants", 1],
    ]
    header, rows = client.push(
        f"SELECT * FROM {table} EMIT CHANGES;",
        {"auto.offset.reset": "earliest"},
        until=lambda rows: _bob(rows) == BOB,
        timeout=40,
    )
    assert header["columnNames"] == ["CUSTOMER", "ITEM", "TOTAL_QTY"]
    assert _bob(rows) == BOB


def test_legacy_query_endpoint_limit(client: KsqlClient, unique_name: str) -> None:
    stream, _ = _setup(client, unique_name)
    r = client.http.post(
        "/query",
        json={
            "ksql": f"SELECT customer, qty FROM {stream} EMIT CHANGES LIMIT 2;",
            "streamsProperties": {"auto.offset.reset": "earliest"},
        },
        timeout=30,
    )
    assert r.status_code == 200
    body = r.json()
    assert body[0]["header"]["schema"] == "`CUSTOMER` STRING, `QTY` INTEGER"
    assert body[1:] == [
        {"row": {"columns": ["bob", 2]}},
        {"row": {"columns": ["bob", -1]}},
        {"finalMessage": "Limit Reached"},
    ]


def test_pull_query_on_stream_and_accept_json(client: KsqlClient, unique_name: str) -> None:
    stream, table = _setup(client, unique_name)
    r = client.http.post(
        "/query", json={"ksql": f"SELECT * FROM {stream} WHERE qty < 0;", "streamsProperties": {}}
    )
    assert r.json()[1:] == [
        {"row": {"columns": ["bob", "pants", -1]}},
        {"finalMessage": "Query Completed"},
    ]

    def alice() -> Any:
        r = client.http.post(
            "/query-stream",
            headers={"Accept": "application/json"},
            json={"sql": f"SELECT * FROM {table} WHERE customer='alice';"},
        )
        body = r.json()
        return body if body[1:] == [["alice", "pants", 1]] else None

    body = wait_for(alice, timeout=40)
    assert body[0]["columnNames"] == ["CUSTOMER", "ITEM", "TOTAL_QTY"]


def test_show_and_describe(client: KsqlClient, unique_name: str) -> None:
    stream, table = _setup(client, unique_name)
    streams, tables, queries = client.ksql("SHOW STREAMS; LIST TABLES; SHOW QUERIES;")
    assert {
        "type": "STREAM",
        "name": stream.upper(),
        "topic": stream,
        "keyFormat": "KAFKA",
        "valueFormat": "JSON",
        "isWindowed": False,
    } in streams["streams"]
    assert {
        "type": "TABLE",
        "name": table.upper(),
        "topic": table.upper(),
        "keyFormat": "JSON",
        "valueFormat": "JSON",
        "isWindowed": False,
    } in tables["tables"]
    mine = [q for q in queries["queries"] if q["sinks"] == [table.upper()]]
    assert mine and mine[0]["state"] == "RUNNING" and mine[0]["queryType"] == "PERSISTENT"
    (desc,) = client.ksql(f"DESCRIBE {table};")
    d = desc["sourceDescription"]
    assert [(f["name"], f["schema"]["type"], f.get("type")) for f in d["fields"]] == [
        ("CUSTOMER", "STRING", "KEY"),
        ("ITEM", "STRING", "KEY"),
        ("TOTAL_QTY", "INTEGER", None),
    ]
    assert d["writeQueries"][0]["id"] == mine[0]["id"]
    (topics,) = client.ksql("SHOW TOPICS;")
    names = {t["name"] for t in topics["topics"]}
    assert {stream, table.upper()} <= names
    (props,) = client.ksql("SHOW PROPERTIES;")
    assert any(p["name"] == "ksql.service.id" for p in props["properties"])
