"""Queries' lives as ksqlDB reports them: push queries listed while a client reads them and
released when it leaves; a persistent query that can no longer run is shown in ERROR."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
from confluent_kafka.admin import AdminClient

from cart_pipeline.ksql import KsqlClient as ProjectClient
from tests.engine.conftest import KsqlClient, wait_for


def _queries(client: KsqlClient) -> dict[str, dict[str, Any]]:
    (listing,) = client.ksql("SHOW QUERIES;")
    return {q["id"]: q for q in listing["queries"]}


def _push_query_on_new_stream(client: KsqlClient, name: str) -> str:
    """Creates stream ``name`` (one INT column) and returns a push query over it."""
    client.ksql(
        f"CREATE STREAM {name} (v INT) WITH (kafka_topic='{name}', "
        "value_format='json', partitions=1);"
    )
    return f"SELECT * FROM {name} EMIT CHANGES;"


def test_push_query_released_when_client_disconnects(
    client: KsqlClient, ksqldb_url: str, unique_name: str
) -> None:
    sql = _push_query_on_new_stream(client, unique_name)
    with (
        httpx.Client(base_url=ksqldb_url, timeout=30) as http,
        http.stream("POST", "/query-stream", json={"sql": sql, "properties": {}}) as r,
    ):
        assert r.status_code == 200
        lines = r.iter_lines()  # kept: dropping the iterator would close the connection
        header = orjson.loads(next(lines))
        query_id = header["queryId"]
        assert query_id.startswith(f"transient_{unique_name.upper()}_")
        listed = _queries(client)[query_id]
        assert listed == {
            "queryString": sql,
            "sinks": [],
            "sinkKafkaTopics": [],
            "id": query_id,
            "statusCount": {"RUNNING": 1},
            "queryType": "PUSH",
            "state": "RUNNING",
        }
    # the connection is closed mid-stream: the engine ends the query and its consumer
    wait_for(lambda: query_id not in _queries(client), timeout=20)


def test_terminate_push_query(client: KsqlClient, ksqldb_url: str, unique_name: str) -> None:
    sql = _push_query_on_new_stream(client, unique_name)
    with (
        httpx.Client(base_url=ksqldb_url, timeout=30) as http,
        http.stream("POST", "/query-stream", json={"sql": sql, "properties": {}}) as r,
    ):
        lines = r.iter_lines()
        query_id = orjson.loads(next(lines))["queryId"]
        (entity,) = client.ksql(f"TERMINATE {query_id};")
        assert entity == {
            "@type": "terminate_query",
            "statementText": f"TERMINATE {query_id};",
            "queryId": query_id,
            "wasTerminated": True,
            "warnings": [],
        }
        assert [line for line in lines if line.strip()] == []  # the stream ends, no error
    assert query_id not in _queries(client)


def test_query_in_error_when_its_sink_topic_is_deleted(
    client: KsqlClient, ksqldb_url: str, unique_name: str, kafka_bootstrap: str
) -> None:
    failing, healthy = unique_name, f"{unique_name}_ok"
    for name in (failing, healthy):
        client.ksql(
            f"CREATE STREAM {name} (item VARCHAR, qty INT) WITH (kafka_topic='{name}', "
            "value_format='json', partitions=1);"
            "SET 'auto.offset.reset'='earliest';"
            f"CREATE TABLE {name}_t AS SELECT item, SUM(qty) AS total FROM {name} GROUP BY item;"
        )
        client.ksql(f"INSERT INTO {name} (item, qty) VALUES ('hat', 1);")
        wait_for(lambda: client.pull(f"SELECT * FROM {name}_t;")[1] == [["hat", 1]])  # noqa: B023
    by_sink = {q["sinks"][0]: q["id"] for q in _queries(client).values() if q["sinks"]}
    query_id, other_id = by_sink[f"{failing}_t".upper()], by_sink[f"{healthy}_t".upper()]

    # the broker does not auto-create topics: the sink is gone for good
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    for fut in admin.delete_topics([f"{failing}_t".upper()], operation_timeout=30).values():
        fut.result(30)

    with ProjectClient(ksqldb_url) as ksql:
        wait_for(
            lambda: next(q for q in ksql.list_queries() if q.id == query_id).state == "ERROR",
            timeout=30,
        )
    listed = _queries(client)
    assert listed[query_id]["statusCount"] == {"ERROR": 1}
    assert listed[other_id]["state"] == "RUNNING"
    (desc,) = client.ksql(f"DESCRIBE {failing}_t EXTENDED;")
    (writer,) = desc["sourceDescription"]["writeQueries"]
    assert writer["id"] == query_id and writer["state"] == "ERROR"
    (explained,) = client.ksql(f"EXPLAIN {query_id};")
    assert explained["@type"] == "queryDescription"
    described = explained["queryDescription"]
    assert described["state"] == "ERROR"
    assert list(described["ksqlHostQueryStatus"].values()) == ["ERROR"]
    (error, *_) = described["queryErrors"]
    assert error["type"] == "USER" and isinstance(error["timestamp"], int)
    assert f"{failing}_t".upper() in error["errorMessage"]
    (extended,) = client.ksql("SHOW QUERIES EXTENDED;")
    assert extended["@type"] == "query_descriptions"
    mine = [d for d in extended["queryDescriptions"] if d["id"] == query_id]
    assert mine and mine[0]["state"] == "ERROR" and mine[0]["queryErrors"][0] == error

    # the server and the other query carry on
    assert client.http.get("/healthcheck").status_code == 200
    client.ksql(f"INSERT INTO {healthy} (item, qty) VALUES ('hat', 4);")
    wait_for(lambda: client.pull(f"SELECT * FROM {healthy}_t;")[1] == [["hat", 5]])

    (terminated,) = client.ksql(f"TERMINATE {query_id};")
    assert terminated["commandStatus"]["status"] == "SUCCESS"
    assert query_id not in _queries(client)
    client.ksql(f"DROP TABLE {failing}_t;")


def test_explain_unknown_query(client: KsqlClient) -> None:
    r = client.post_ksql("EXPLAIN CTAS_NOPE_0;")
    assert r.status_code == 400
    assert r.json()["message"] == (
        "Query with id:CTAS_NOPE_0 does not exist, use SHOW QUERIES to view the full set of "
        "queries."
    )
