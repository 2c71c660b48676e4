"""ksqlDB's error shapes, status codes and all-or-nothing request validation."""

from __future__ import annotations

from tests.engine.conftest import KsqlClient


def _create_stream(name: str) -> str:
    return (
        f"CREATE STREAM {name} (customer VARCHAR KEY, item VARCHAR, qty INT) "
        f"WITH (kafka_topic='{name}', value_format='json', partitions=1);"
    )


def test_bad_sql_is_statement_error(client: KsqlClient) -> None:
    r = client.post_ksql("CREATE STREM foo;")
    assert r.status_code == 400
    body = r.json()
    assert body["@type"] == "statement_error"
    assert body["error_code"] == 40001
    assert body["statementText"] == "CREATE STREM foo;"
    assert body["message"].startswith("line 1:8: Syntax Error")
    assert body["entities"] == []


def test_select_on_ksql_endpoint_is_40002(client: KsqlClient, unique_name: str) -> None:
    client.ksql(_create_stream(unique_name))
    r = client.post_ksql(f"SELECT * FROM {unique_name};")
    assert r.status_code == 400
    body = r.json()
    assert body["error_code"] == 40002
    assert body["@type"] == "statement_error"
    assert "should be issued to the websocket endpoint '/query'" in body["message"]


def test_missing_topic_without_partitions(client: KsqlClient, unique_name: str) -> None:
    r = client.post_ksql(
        f"CREATE STREAM {unique_name} (a INT) WITH (kafka_topic='{unique_name}', "
        "value_format='json');"
    )
    assert r.status_code == 400
    assert r.json()["message"].startswith(f"Topic '{unique_name}' does not exist.")


def test_request_is_validated_before_anything_runs(client: KsqlClient, unique_name: str) -> None:
    first, second = f"{unique_name}_a", f"{unique_name}_b"
    r = client.post_ksql(
        _create_stream(first)
        + f"CREATE STREAM {second} (x INT) WITH (kafka_topic='{second}', value_format='nope');"
    )
    assert r.status_code == 400
    assert r.json()["statementText"].startswith(f"CREATE STREAM {second}")
    (streams,) = client.ksql("SHOW STREAMS;")
    assert first.upper() not in {s["name"] for s in streams["streams"]}


def test_set_applies_to_later_statements_only(client: KsqlClient, unique_name: str) -> None:
    stream, table = unique_name, f"{unique_name}_t"
    entities = client.ksql(
        _create_stream(stream)
        + "SET 'auto.offset.reset'='earliest';"
        + f"CREATE TABLE {table} AS SELECT customer, COUNT(*) AS n FROM {stream} "
        "GROUP BY customer;"
    )
    assert len(entities) == 2


def test_duplicate_and_if_not_exists(client: KsqlClient, unique_name: str) -> None:
    client.ksql(_create_stream(unique_name))
    r = client.post_ksql(_create_stream(unique_name))
    assert r.status_code == 400
    assert r.json()["message"] == (
        f"Cannot add stream '{unique_name.upper()}': A stream with the same name already exists"
    )
    (warning,) = client.ksql(
        _create_stream(unique_name).replace("CREATE STREAM", "CREATE STREAM IF NOT EXISTS")
    )
    assert warning["@type"] == "warning_entity"


def test_multi_column_group_by_needs_json_key(client: KsqlClient, unique_name: str) -> None:
    client.ksql(_create_stream(unique_name))
    r = client.post_ksql(
        f"CREATE TABLE {unique_name}_t AS SELECT customer, item, SUM(qty) AS total "
        f"FROM {unique_name} GROUP BY customer, item;"
    )
    assert r.status_code == 400
    message = r.json()["message"]
    assert message.startswith("Key format does not support schema.\nformat: KAFKA\n")
    assert "The 'KAFKA' format only supports a single field." in message


def test_unsupported_feature_is_named(client: KsqlClient, unique_name: str) -> None:
    client.ksql(_create_stream(unique_name))
    r = client.post_ksql(
        f"CREATE TABLE {unique_name}_t AS SELECT customer, COLLECT_LIST(qty) AS m "
        f"FROM {unique_name} GROUP BY customer;"
    )
    assert r.status_code == 400
    assert r.json()["error_code"] == 40001
    assert "COLLECT_LIST" in r.json()["message"]
    r = client.http.post(
        "/query-stream",
        json={
            "sql": f"SELECT * FROM {unique_name} a JOIN {unique_name} b WITHIN 1 SECOND "
            "ON a.customer = b.customer EMIT CHANGES;"
        },
    )
    assert r.status_code == 400
    assert "JOIN" in r.json()["message"]


def test_drop_refuses_source_read_by_query(client: KsqlClient, unique_name: str) -> None:
    table = f"{unique_name}_t"
    client.ksql(
        _create_stream(unique_name)
        + f"CREATE TABLE {table} AS SELECT customer, COUNT(*) AS n FROM {unique_name} "
        "GROUP BY customer;"
    )
    r = client.post_ksql(f"DROP STREAM {unique_name};")
    assert r.status_code == 400
    assert r.json()["message"].startswith(f"Cannot drop {unique_name.upper()}.")
    (dropped,) = client.ksql(f"DROP TABLE {table} DELETE TOPIC;")
    assert dropped["commandStatus"]["status"] == "SUCCESS"
    (queries,) = client.ksql("SHOW QUERIES;")
    assert table.upper() not in {s for q in queries["queries"] for s in q["sinks"]}
    client.ksql(f"DROP STREAM {unique_name};")


def test_info_and_health(client: KsqlClient) -> None:
    info = client.http.get("/info").json()["KsqlServerInfo"]
    assert info["ksqlServiceId"] == "default_"
    assert info["serverStatus"] == "RUNNING"
    assert info["kafkaClusterId"]
    assert client.http.get("/healthcheck").json()["isHealthy"] is True
    assert client.http.get("/chc/ready").status_code == 200
    assert client.http.get("/chc/live").status_code == 200
