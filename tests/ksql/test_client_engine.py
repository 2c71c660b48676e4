"""The client against a real ksqlDB-compatible server (``ksqldb_url`` fixture).

The lead's conftest points ``ksqldb_url`` at the embedded engine over a real broker;
the same tests are meant to pass against Confluent's ksqlDB server unchanged.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

from cart_pipeline.ksql import (
    CommandStatus,
    KsqlClient,
    KsqlStatementError,
    QueryResult,
    quote_identifier,
    quote_literal,
)

from .test_sql import INJECTION_SHAPED

COLUMNS = "`ID` STRING KEY, `NOTE` STRING, `QTY` INTEGER, `PRICE` DOUBLE, `OK` BOOLEAN"
EARLIEST = {"auto.offset.reset": "earliest"}


@pytest.fixture
def client(ksqldb_url: str) -> Iterator[KsqlClient]:
    with KsqlClient(ksqldb_url, timeout=30.0, not_ready_retry_s=30.0) as ksql:
        ksql.wait_until_ready(60)
        yield ksql


@pytest.fixture
def stream_name(client: KsqlClient, unique_name: str) -> Iterator[str]:
    """A fresh JSON stream on its own topic; dropped (with its topic) afterwards."""
    name = unique_name.upper()
    entities = client.execute(
        f"CREATE STREAM {quote_identifier(name)} ({COLUMNS}) WITH ("
        f"KAFKA_TOPIC={quote_literal(name.lower())}, PARTITIONS=1, VALUE_FORMAT='JSON');"
    )
    assert len(entities) == 1 and isinstance(entities[0], CommandStatus)
    assert entities[0].status == "SUCCESS", entities[0].raw
    try:
        yield name
    finally:
        # A test may already have dropped it, or a query may still read from it.
        with contextlib.suppress(KsqlStatementError):
            client.execute(f"DROP STREAM IF EXISTS {quote_identifier(name)} DELETE TOPIC;")


def _pull_until(client: KsqlClient, sql: str, count: int, within_s: float = 30.0) -> QueryResult:
    """Pull queries read what is already in the topic; give produce a bounded moment."""
    deadline = time.monotonic() + within_s
    while True:
        result = client.query(sql, properties=EARLIEST)
        if len(result) >= count or time.monotonic() > deadline:
            return result
        time.sleep(0.25)


def test_server_info_and_health(client: KsqlClient) -> None:
    info = client.server_info()
    assert info.version and info.ksql_service_id
    health = client.healthcheck()
    assert health.is_healthy is True


def test_insert_values_round_trips_injection_shaped_values(
    client: KsqlClient, stream_name: str
) -> None:
    for index, value in enumerate(INJECTION_SHAPED):
        assert client.insert_values(stream_name, {"ID": f"id-{index}", "NOTE": value}) == []
    result = _pull_until(
        client, f"SELECT `ID`, `NOTE` FROM {quote_identifier(stream_name)};", len(INJECTION_SHAPED)
    )
    assert result.column_names == ("ID", "NOTE")
    got = {row["ID"]: row["NOTE"] for row in result.dicts()}
    assert got == {f"id-{i}": value for i, value in enumerate(INJECTION_SHAPED)}
    # Nothing was split off into a second statement: the stream is still the only one.
    assert stream_name in {s.name for s in client.list_streams()}


def test_insert_values_typed_columns(client: KsqlClient, stream_name: str) -> None:
    rows: list[dict[str, Any]] = [
        {"ID": "a", "NOTE": None, "QTY": 2_147_483_647, "PRICE": 0.1, "OK": True},
        {"ID": "b", "NOTE": "x", "QTY": -3, "PRICE": Decimal("12.50"), "OK": False},
        {"ID": "c", "QTY": None, "PRICE": -1e-300},
    ]
    for row in rows:
        client.insert_values(stream_name, row)
    result = _pull_until(client, f"SELECT * FROM {quote_identifier(stream_name)};", 3)
    by_id = {row["ID"]: row for row in result.dicts()}
    assert by_id["a"] == {"ID": "a", "NOTE": None, "QTY": 2_147_483_647, "PRICE": 0.1, "OK": True}
    assert by_id["b"]["PRICE"] == 12.5 and by_id["b"]["OK"] is False
    assert by_id["c"]["PRICE"] == -1e-300 and by_id["c"]["NOTE"] is None
    assert dict(zip(result.column_names, result.column_types, strict=True)) == {
        "ID": "STRING",
        "NOTE": "STRING",
        "QTY": "INTEGER",
        "PRICE": "DOUBLE",
        "OK": "BOOLEAN",
    }


def test_statement_error_carries_code_and_text(client: KsqlClient, unique_name: str) -> None:
    bad = f"CREATE STREAM {unique_name} WITH nonsense;"
    with pytest.raises(KsqlStatementError) as info:
        client.execute(bad)
    err = info.value
    assert err.error_code == 40001
    assert err.http_status == 400
    assert err.statement_text and unique_name in err.statement_text
    assert err.message and "\n" not in str(err)


def test_unknown_source_is_a_statement_error(client: KsqlClient, unique_name: str) -> None:
    with pytest.raises(KsqlStatementError) as info:
        client.describe(unique_name.upper() + "_MISSING")
    assert info.value.error_code == 40001
    with pytest.raises(KsqlStatementError):
        client.query(f"SELECT * FROM {quote_identifier(unique_name + '_missing')};")


def test_list_and_describe_helpers(client: KsqlClient, stream_name: str) -> None:
    listed = {s.name: s for s in client.list_streams()}
    assert stream_name in listed
    summary = listed[stream_name]
    assert summary.type == "STREAM" and summary.topic == stream_name.lower()
    assert summary.value_format == "JSON" and summary.is_windowed is False
    assert stream_name not in {t.name for t in client.list_tables()}
    assert stream_name.lower() in {t.name for t in client.list_topics()}

    desc = client.describe(stream_name)
    assert desc.name == stream_name and desc.source_type == "STREAM"
    assert desc.topic == stream_name.lower() and desc.value_format == "JSON"
    assert [(f.name, f.sql_type, f.is_key) for f in desc.fields] == [
        ("ID", "STRING", True),
        ("NOTE", "STRING", False),
        ("QTY", "INTEGER", False),
        ("PRICE", "DOUBLE", False),
        ("OK", "BOOLEAN", False),
    ]
    extended = client.describe(stream_name, extended=True)
    assert extended.extended is True and extended.partitions == 1


def test_persistent_query_is_listed(client: KsqlClient, stream_name: str) -> None:
    sink = stream_name + "_COUNTS"
    client.execute(
        f"CREATE TABLE {quote_identifier(sink)} AS SELECT `ID`, COUNT(*) AS `N` FROM "
        f"{quote_identifier(stream_name)} GROUP BY `ID` EMIT CHANGES;"
    )
    try:
        queries = [q for q in client.list_queries() if sink in q.sinks]
        assert len(queries) == 1 and queries[0].id
        assert queries[0].sink_kafka_topics
        assert client.describe(sink).write_queries == (queries[0].id,)
    finally:
        client.execute(f"DROP TABLE IF EXISTS {quote_identifier(sink)} DELETE TOPIC;")


def test_push_query_with_limit_yields_rows_and_ends(client: KsqlClient, stream_name: str) -> None:
    for index in range(3):
        client.insert_values(stream_name, {"ID": f"p{index}", "NOTE": f"n{index}"})
    sql = f"SELECT `ID`, `NOTE` FROM {quote_identifier(stream_name)} EMIT CHANGES LIMIT 2;"
    with client.stream(sql, properties=EARLIEST, idle_timeout=30) as query:
        assert query.column_names == ("ID", "NOTE")
        rows = list(query)
    assert rows == [("p0", "n0"), ("p1", "n1")]
    assert query.closed


def test_push_query_client_side_limit_closes_query(client: KsqlClient, stream_name: str) -> None:
    for index in range(2):
        client.insert_values(stream_name, {"ID": f"q{index}", "NOTE": "x"})
    sql = f"SELECT * FROM {quote_identifier(stream_name)} EMIT CHANGES;"
    query = client.stream(sql, properties=EARLIEST, limit=1, idle_timeout=30)
    assert query.query_id
    assert [row[0] for row in query] == ["q0"]
    assert query.closed
    # The server is still usable after the early close.
    assert stream_name in {s.name for s in client.list_streams()}
