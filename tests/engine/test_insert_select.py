"""INSERT INTO ... SELECT, WRAP_SINGLE_VALUE and CREATE SOURCE STREAM/TABLE, beyond what
the conformance cases pin down: restart survival, refusals, bare single values."""

from __future__ import annotations

from typing import Any

from tests.engine.conftest import KsqlClient, PrivateEngine, wait_for


def _rows(client: KsqlClient, sql: str) -> list[list[Any]]:
    return client.pull(sql)[1]


def _error(client: KsqlClient, sql: str) -> str:
    r = client.post_ksql(sql)
    assert r.status_code == 400, r.text
    return str(r.json()["message"])


def _query_ids(client: KsqlClient) -> dict[str, str]:
    (listing,) = client.ksql("SHOW QUERIES;")
    return {q["id"]: q["state"] for q in listing["queries"]}


def test_insert_select_survives_restart(private_engine: PrivateEngine, unique_name: str) -> None:
    private_engine.start()
    a, b, out = f"{unique_name}_a", f"{unique_name}_b", f"{unique_name}_out"
    client = KsqlClient(private_engine.url)
    client.ksql(
        f"CREATE STREAM {a} (k VARCHAR KEY, v INT) WITH (kafka_topic='{a}', value_format='json', "
        "partitions=1);"
        f"CREATE STREAM {b} (k VARCHAR KEY, v INT) WITH (kafka_topic='{b}', value_format='json', "
        "partitions=1);"
        "SET 'auto.offset.reset'='earliest';"
        f"CREATE STREAM {out} AS SELECT * FROM {a};"
    )
    (status,) = client.ksql(
        f"INSERT INTO {out} SELECT * FROM {b} WHERE v > 0;", {"auto.offset.reset": "earliest"}
    )
    query_id = status["commandStatus"]["queryId"]
    assert query_id.startswith("INSERTQUERY_")
    assert status["commandStatus"]["message"] == f"Created query with ID {query_id}"
    client.ksql(f"INSERT INTO {b} (k, v) VALUES ('x', 1); INSERT INTO {b} (k, v) VALUES ('y', 0);")
    client.ksql(f"INSERT INTO {a} (k, v) VALUES ('z', 3);")
    select = f"SELECT k, v FROM {out};"
    wait_for(lambda: sorted(_rows(client, select)) == [["x", 1], ["z", 3]])

    # the sink is written by the INSERT query: DROP is refused, naming it
    message = _error(client, f"DROP STREAM {out};")
    assert message == (
        f"Cannot drop {out.upper()}.\nThe following queries read from this source: [].\n"
        f"The following queries write into this source: [{query_id}].\n"
        f"You need to terminate them before dropping {out.upper()}."
    )
    (desc,) = client.ksql(f"DESCRIBE {out};")
    writers = {q["id"] for q in desc["sourceDescription"]["writeQueries"]}
    assert query_id in writers
    client.close()
    private_engine.stop()

    private_engine.start()
    client = KsqlClient(private_engine.url)
    assert _query_ids(client).get(query_id) == "RUNNING"
    client.ksql(f"INSERT INTO {b} (k, v) VALUES ('w', 2);")
    # resumes from its committed offsets: the new row once, nothing processed twice
    wait_for(lambda: sorted(_rows(client, select)) == [["w", 2], ["x", 1], ["z", 3]])
    client.ksql(f"TERMINATE {query_id};")
    assert query_id not in _query_ids(client)
    client.ksql(f"DROP STREAM {out};")
    client.close()


def test_insert_select_refusals(client: KsqlClient, unique_name: str) -> None:
    s, t, k = f"{unique_name}_s", f"{unique_name}_t", f"{unique_name}_k"
    client.ksql(
        f"CREATE STREAM {s} (id INT KEY, v VARCHAR) WITH (kafka_topic='{s}', value_format='json', "
        "partitions=1);"
        f"CREATE TABLE {t} (id INT PRIMARY KEY, v VARCHAR) WITH (kafka_topic='{t}', "
        "value_format='json', partitions=1);"
        f"CREATE STREAM {k} (id INT KEY, v BIGINT) WITH (kafka_topic='{k}', value_format='json', "
        "partitions=1);"
        f"CREATE STREAM {s}2 (id INT KEY, v VARCHAR) WITH (kafka_topic='{s}2', "
        "value_format='json', partitions=1);"
    )
    assert _error(client, f"INSERT INTO {t} SELECT * FROM {s};") == (
        f"INSERT INTO can only be used to insert into a stream. {t.upper()} is a table."
    )
    assert _error(client, f"INSERT INTO {s} SELECT * FROM {t};") == (
        f"Incompatible data sink and query result. Data sink ({s.upper()}) type is KSTREAM but "
        "select query result is KTABLE."
    )
    assert _error(client, f"INSERT INTO {k} SELECT * FROM {s};") == (
        "Incompatible schema between results and sink.\n"
        "Result schema is `ID` INTEGER KEY, `V` STRING\n"
        "Sink schema is `ID` INTEGER KEY, `V` BIGINT"
    )
    assert "reserved query ID prefix" in _error(
        client, f"INSERT INTO {s} WITH (QUERY_ID='CSAS_X') SELECT * FROM {s}2;"
    )
    (status,) = client.ksql(
        f"INSERT INTO {s} WITH (QUERY_ID='{unique_name}_q') SELECT * FROM {s}2;"
    )
    assert status["commandStatus"]["queryId"] == f"{unique_name}_Q".upper()
    client.ksql(f"TERMINATE {unique_name}_q;")


def test_wrap_single_value(client: KsqlClient, unique_name: str) -> None:
    bare, raw = f"{unique_name}_bare", f"{unique_name}_raw"
    client.ksql(
        f"CREATE STREAM {bare} (v INT) WITH (kafka_topic='{bare}', value_format='json', "
        "partitions=1, wrap_single_value=false);"
    )
    client.ksql(
        f"CREATE STREAM {raw} (v STRING) WITH (kafka_topic='{bare}', value_format='kafka');"
        f"INSERT INTO {bare} (v) VALUES (5);"
    )
    # the value is the bare JSON number, not {"V": 5}
    wait_for(lambda: _rows(client, f"SELECT v FROM {raw};") == [["5"]])
    wait_for(lambda: _rows(client, f"SELECT v FROM {bare};") == [[5]])
    assert (
        _error(
            client,
            f"CREATE STREAM {unique_name}_two (a INT, b INT) WITH (kafka_topic='{bare}', "
            "value_format='json', wrap_single_value=false);",
        )
        == "'WRAP_SINGLE_VALUE' is only valid for single-field value schemas"
    )
    assert (
        _error(
            client,
            f"CREATE STREAM {unique_name}_kafka (a INT) WITH (kafka_topic='{bare}', "
            "value_format='kafka', wrap_single_value=true);",
        )
        == "Format 'KAFKA' does not support 'WRAP_SINGLE_VALUE' set to 'true'."
    )
    # the session config applies to single-column values only
    client.ksql(
        f"CREATE STREAM {unique_name}_cfg WITH (kafka_topic='{unique_name}_cfg', partitions=1) "
        f"AS SELECT v FROM {bare};",
        {"ksql.persistence.wrap.single.values": "false", "auto.offset.reset": "earliest"},
    )
    wait_for(lambda: _rows(client, f"SELECT v FROM {unique_name}_cfg;") == [[5]])


def test_source_stream_and_table(client: KsqlClient, unique_name: str) -> None:
    s, t = f"{unique_name}_s", f"{unique_name}_t"
    client.ksql(
        f"CREATE STREAM {unique_name}_w (k VARCHAR KEY, v INT) WITH (kafka_topic='{t}', "
        "value_format='json', partitions=1);"
        f"INSERT INTO {unique_name}_w (k, v) VALUES ('a', 1);"
        f"INSERT INTO {unique_name}_w (k, v) VALUES ('b', 2);"
        f"INSERT INTO {unique_name}_w (k, v) VALUES ('a', 3);"
    )
    client.ksql(
        f"CREATE SOURCE STREAM {s} (k VARCHAR KEY, v INT) WITH (kafka_topic='{t}', "
        "value_format='json');"
    )
    assert _error(client, f"INSERT INTO {s} (k, v) VALUES ('c', 4);") == (
        f"Cannot insert values into read-only stream: {s.upper()}"
    )
    (status,) = client.ksql(
        f"CREATE SOURCE TABLE {t} (k VARCHAR PRIMARY KEY, v INT) WITH (kafka_topic='{t}', "
        "value_format='json');"
    )
    query_id = status["commandStatus"]["queryId"]
    assert query_id.startswith(f"CST_{t.upper()}_")
    # materialized from the topic's beginning: pull queries see the latest row per key
    wait_for(lambda: sorted(_rows(client, f"SELECT * FROM {t};")) == [["a", 3], ["b", 2]])
    assert _error(client, f"INSERT INTO {t} (k, v) VALUES ('c', 4);") == (
        f"Cannot insert values into read-only table: {t.upper()}"
    )
    assert _error(client, f"DROP TABLE {t} DELETE TOPIC;") == (
        f"Cannot delete topic for read-only source: {t.upper()}"
    )
    client.ksql(f"DROP TABLE {t};")
    assert query_id not in {q for q in _query_ids(client)}
