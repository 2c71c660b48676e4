"""The client over real sockets against stand-in peers: errors, retries, streaming."""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from cart_pipeline.ksql import (
    CommandStatus,
    KsqlAuthError,
    KsqlClient,
    KsqlConfigError,
    KsqlError,
    KsqlNotReady,
    KsqlProtocolError,
    KsqlServerError,
    KsqlStatementError,
    KsqlTimeout,
    KsqlTransportError,
    SourceDescription,
)

from ._standins import Reply, Route, Seen, closed_port, http_standin, json_body, silent_tcp_server

SECRET = "s3cr3t-Pa55"
NOT_READY = {
    "@type": "generic_error",
    "error_code": 50302,
    "message": "KSQL is not yet ready to serve requests.",
}


def test_connection_refused_is_transport_error_fast() -> None:
    port = closed_port()
    with KsqlClient(f"http://127.0.0.1:{port}", connect_timeout=2.0) as client:
        started = time.monotonic()
        with pytest.raises(KsqlTransportError) as info:
            client.execute("LIST STREAMS;")
    assert time.monotonic() - started < 2.0
    err = info.value
    assert not isinstance(err, KsqlTimeout)
    assert err.method == "POST" and err.url == f"http://127.0.0.1:{port}/ksql"
    assert err.cause is not None
    assert "cannot connect" in str(err) and "\n" not in str(err)


def test_silent_server_times_out_within_bound() -> None:
    with silent_tcp_server() as url, KsqlClient(url, timeout=0.5, connect_timeout=1.0) as client:
        started = time.monotonic()
        with pytest.raises(KsqlTimeout) as info:
            client.execute("LIST STREAMS;")
        elapsed = time.monotonic() - started
    assert 0.4 <= elapsed < 3.0
    assert isinstance(info.value, KsqlTransportError)
    assert "timed out" in str(info.value)


def test_push_query_idle_timeout_on_silent_server() -> None:
    with silent_tcp_server() as url, KsqlClient(url, timeout=5.0) as client:
        started = time.monotonic()
        with pytest.raises(KsqlTimeout):
            client.stream("SELECT * FROM S EMIT CHANGES;", idle_timeout=0.3)
    assert time.monotonic() - started < 3.0


def _not_ready_then(n: int, final: Reply) -> tuple[dict[str, int], Route]:
    counter = {"calls": 0}

    def route(seen: Seen) -> Reply:
        counter["calls"] += 1
        if counter["calls"] <= n:
            return Reply(503, json_body(NOT_READY))
        return final

    return counter, route


def test_not_ready_is_retried_then_succeeds() -> None:
    ok = Reply(
        200,
        json_body(
            [{"@type": "streams", "statementText": "LIST STREAMS;", "streams": [], "warnings": []}]
        ),
    )
    counter, route = _not_ready_then(3, ok)
    with http_standin(route) as server, KsqlClient(server.url, not_ready_retry_s=10) as client:
        assert client.list_streams() == []
    assert counter["calls"] == 4


def test_not_ready_retry_is_bounded() -> None:
    counter, route = _not_ready_then(10_000, Reply(200, b"[]"))
    with http_standin(route) as server, KsqlClient(server.url, not_ready_retry_s=1.0) as client:
        started = time.monotonic()
        with pytest.raises(KsqlNotReady) as info:
            client.execute("LIST STREAMS;")
        elapsed = time.monotonic() - started
    assert elapsed < 2.5
    assert counter["calls"] >= 2
    err = info.value
    assert err.error_code == 50302 and err.http_status == 503
    assert "50302" in str(err) and "not yet ready" in str(err)


def test_not_ready_retry_can_be_disabled() -> None:
    counter, route = _not_ready_then(5, Reply(200, b"[]"))
    with (
        http_standin(route) as server,
        KsqlClient(server.url, not_ready_retry_s=0) as client,
        pytest.raises(KsqlNotReady),
    ):
        client.execute("LIST STREAMS;")
    assert counter["calls"] == 1


def test_auth_error_never_shows_the_password() -> None:
    def route(seen: Seen) -> Reply:
        return Reply(
            401,
            json_body({"@type": "generic_error", "error_code": 40100, "message": "Unauthorized"}),
        )

    with http_standin(route) as server:
        client = KsqlClient(server.url, username="KEY123", password=SECRET)
        with client, pytest.raises(KsqlAuthError) as info:
            client.execute("LIST STREAMS;")
        sent = server.requests[0].headers["authorization"]
    assert sent == "Basic " + base64.b64encode(f"KEY123:{SECRET}".encode()).decode()
    err = info.value
    assert err.http_status == 401 and err.error_code == 40100
    for text in (str(err), repr(err), repr(client), err.url, err.request):
        assert SECRET not in text
    assert "'***'" in repr(client)


def test_credentials_in_url_are_used_but_not_shown() -> None:
    def route(seen: Seen) -> Reply:
        return Reply(403, b"<html>Forbidden</html>", content_type="text/html")

    with http_standin(route) as server:
        url = server.url.replace("http://", f"http://KEY:{SECRET}@")
        with KsqlClient(url) as client, pytest.raises(KsqlAuthError) as info:
            client.execute("LIST STREAMS;")
        assert server.requests[0].headers["authorization"].startswith("Basic ")
    assert SECRET not in str(info.value) and SECRET not in repr(client)
    assert client.url == server.url


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (200, b"<html>not json</html>"),
        (200, b'{"not": "a list"}'),
        (502, b"Bad Gateway"),
        (200, b'[{"no_type": 1}]'),
    ],
)
def test_junk_is_protocol_error(status: int, body: bytes) -> None:
    with (
        http_standin(lambda seen: Reply(status, body, content_type="text/html")) as server,
        KsqlClient(server.url) as client,
        pytest.raises(KsqlProtocolError) as info,
    ):
        client.execute("LIST STREAMS;")
    assert "unexpected response" in str(info.value)
    assert "\n" not in str(info.value)


def test_statement_error_carries_context() -> None:
    statement = "CREATE STREM oops;\n"
    error = {
        "@type": "statement_error",
        "error_code": 40001,
        "message": "line 1:8: Syntax Error\nExpecting STREAM",
        "statementText": "CREATE STREM oops;",
        "entities": [],
    }
    with (
        http_standin(lambda seen: Reply(400, json_body(error))) as server,
        KsqlClient(server.url) as client,
        pytest.raises(KsqlStatementError) as info,
    ):
        client.execute(statement, properties={"auto.offset.reset": "earliest"})
    sent = server.requests[0]
    assert sent.path == "/ksql"
    assert sent.headers["accept"] == "application/vnd.ksql.v1+json"
    assert sent.headers["content-type"].startswith("application/vnd.ksql.v1+json")
    assert orjson.loads(sent.body) == {
        "ksql": statement,
        "streamsProperties": {"auto.offset.reset": "earliest"},
    }
    err = info.value
    assert err.error_code == 40001 and err.http_status == 400
    assert err.statement_text == "CREATE STREM oops;"
    assert str(err) == (
        f"POST {server.url}/ksql -> HTTP 400 statement_error 40001: "
        "line 1:8: Syntax Error Expecting STREAM [statement: CREATE STREM oops;]"
    )
    assert isinstance(err, KsqlServerError) and isinstance(err, KsqlError)


def test_entities_are_typed() -> None:
    payload = [
        {
            "@type": "currentStatus",
            "statementText": "CREATE STREAM S ...;",
            "commandId": "stream/`S`/create",
            "commandStatus": {"status": "SUCCESS", "message": "Stream created", "queryId": None},
            "commandSequenceNumber": 4,
            "warnings": [{"message": "careful"}],
        },
        {
            "@type": "sourceDescription",
            "statementText": "DESCRIBE S;",
            "warnings": [],
            "sourceDescription": {
                "name": "S",
                "type": "STREAM",
                "topic": "t",
                "keyFormat": "KAFKA",
                "valueFormat": "JSON",
                "readQueries": [{"id": "Q1"}],
                "writeQueries": [],
                "statement": "CREATE STREAM S ...",
                "windowType": None,
                "extended": False,
                "partitions": 1,
                "replication": 1,
                "fields": [
                    {"name": "ID", "schema": {"type": "STRING"}, "type": "KEY"},
                    {
                        "name": "TAGS",
                        "schema": {"type": "ARRAY", "memberSchema": {"type": "STRING"}},
                    },
                    {
                        "name": "P",
                        "schema": {"type": "DECIMAL", "parameters": {"precision": 10, "scale": 2}},
                    },
                    {
                        "name": "ADDR",
                        "schema": {
                            "type": "STRUCT",
                            "fields": [{"name": "ZIP", "schema": {"type": "INTEGER"}}],
                        },
                    },
                ],
            },
        },
        {"@type": "something_new", "statementText": "X;"},
    ]
    with (
        http_standin(lambda seen: Reply(200, json_body(payload))) as server,
        KsqlClient(server.url) as client,
    ):
        status, desc, other = client.execute("CREATE STREAM S ...; DESCRIBE S; X;")
    assert isinstance(status, CommandStatus)
    assert (status.status, status.message, status.command_sequence_number) == (
        "SUCCESS",
        "Stream created",
        4,
    )
    assert status.warnings == ("careful",) and status.raw["commandId"] == "stream/`S`/create"
    assert isinstance(desc, SourceDescription)
    assert [(f.name, f.sql_type, f.is_key) for f in desc.fields] == [
        ("ID", "STRING", True),
        ("TAGS", "ARRAY<STRING>", False),
        ("P", "DECIMAL(10, 2)", False),
        ("ADDR", "STRUCT<`ZIP` INTEGER>", False),
    ]
    assert desc.read_queries == ("Q1",) and desc.partitions == 1
    assert other.type == "something_new" and other.statement_text == "X;"


# -- /query-stream -------------------------------------------------------------------

HEADER = {"queryId": "q-1", "columnNames": ["ID", "NOTE"], "columnTypes": ["STRING", "STRING"]}
TRICKY = "a\u2028b\u2029c\x85d\x1ce;'--/*`"


def _lines(*items: object) -> list[bytes]:
    return [orjson.dumps(item) + b"\n" for item in items]


def test_pull_query_reads_header_and_rows_verbatim() -> None:
    # Split one row across chunks mid-UTF-8 to prove line assembly is byte-safe.
    body = b"".join(_lines(HEADER, ["1", TRICKY], ["2", "Ωμέγα"]))
    cut = body.index("Ω".encode()) + 1
    chunks = [body[:cut], body[cut:]]

    def route(seen: Seen) -> Reply:
        return Reply(200, chunks, content_type="application/vnd.ksqlapi.delimited.v1")

    with http_standin(route) as server, KsqlClient(server.url) as client:
        result = client.query("SELECT * FROM S;", properties={"a": "b"})
        sent = server.requests[0]
    assert sent.path == "/query-stream"
    assert sent.headers["accept"] == "application/vnd.ksqlapi.delimited.v1"
    assert orjson.loads(sent.body) == {"sql": "SELECT * FROM S;", "properties": {"a": "b"}}
    assert result.column_names == ("ID", "NOTE") and result.query_id == "q-1"
    assert result.rows == (("1", TRICKY), ("2", "Ωμέγα"))
    assert result.dicts()[0] == {"ID": "1", "NOTE": TRICKY}


def test_query_accepts_a_single_json_array_body() -> None:
    body = json_body([HEADER, ["1", "x"]])
    with http_standin(lambda seen: Reply(200, body)) as server, KsqlClient(server.url) as c:
        assert c.query("SELECT * FROM S;").rows == (("1", "x"),)


def test_query_error_before_and_during_stream() -> None:
    bad = {"@type": "generic_error", "error_code": 40001, "message": "S does not exist."}
    with (
        http_standin(lambda seen: Reply(400, json_body(bad))) as server,
        KsqlClient(server.url) as client,
        pytest.raises(KsqlStatementError) as info,
    ):
        client.query("SELECT * FROM S;")
    assert info.value.statement_text == "SELECT * FROM S;" and info.value.error_code == 40001

    mid = {"@type": "generic_error", "error_code": 50000, "message": "boom"}
    body = b"".join(_lines(HEADER, ["1", "x"], mid))
    with (
        http_standin(lambda seen: Reply(200, [body])) as server,
        KsqlClient(server.url) as client,
        pytest.raises(KsqlServerError) as info2,
    ):
        client.query("SELECT * FROM S;")
    assert info2.value.error_code == 50000 and "boom" in str(info2.value)


def test_push_query_early_stop_sends_close_query() -> None:
    stop = threading.Event()

    def endless() -> Iterator[bytes]:
        yield orjson.dumps(HEADER) + b"\n"
        n = 0
        while not stop.is_set() and n < 500:
            n += 1
            yield orjson.dumps([str(n), "row"]) + b"\n"

    def route(seen: Seen) -> Reply:
        if seen.path == "/close-query":
            stop.set()
            return Reply(200, b"")
        return Reply(200, endless(), delay_between_chunks=0.01)

    with http_standin(route) as server, KsqlClient(server.url) as client:
        query = client.stream("SELECT * FROM S EMIT CHANGES;", limit=3)
        assert query.query_id == "q-1" and query.column_types == ("STRING", "STRING")
        assert [row[0] for row in query] == ["1", "2", "3"]
        assert query.closed
        deadline = time.monotonic() + 5
        while "/close-query" not in server.paths() and time.monotonic() < deadline:
            time.sleep(0.02)
        close = [r for r in server.requests if r.path == "/close-query"]
    assert len(close) == 1 and orjson.loads(close[0].body) == {"queryId": "q-1"}


def test_push_query_break_and_context_manager_close() -> None:
    def route(seen: Seen) -> Reply:
        if seen.path == "/close-query":
            return Reply(200, b"")
        rows = [orjson.dumps([str(i), "r"]) + b"\n" for i in range(200)]
        return Reply(200, [orjson.dumps(HEADER) + b"\n", *rows], delay_between_chunks=0.01)

    with http_standin(route) as server, KsqlClient(server.url) as client:
        with client.stream("SELECT * FROM S EMIT CHANGES;") as query:
            for row in query:
                if row[0] == "1":
                    break
        assert query.closed
        assert server.paths().count("/close-query") == 1


def test_push_query_ended_by_server_needs_no_close() -> None:
    body = b"".join(_lines(HEADER, ["1", "a"], ["2", "b"]))
    with http_standin(lambda seen: Reply(200, [body])) as server, KsqlClient(server.url) as c:
        assert len(list(c.stream("SELECT * FROM S EMIT CHANGES LIMIT 2;"))) == 2
        assert "/close-query" not in server.paths()


# -- info, health, readiness ---------------------------------------------------------

INFO = {
    "KsqlServerInfo": {
        "version": "0.29.0",
        "kafkaClusterId": "k1",
        "ksqlServiceId": "default_",
        "serverStatus": "RUNNING",
    }
}


def test_server_info_and_healthcheck() -> None:
    health = {
        "isHealthy": False,
        "details": {"kafka": {"isHealthy": False}, "metastore": {"isHealthy": True}},
    }

    def route(seen: Seen) -> Reply:
        return (
            Reply(200, json_body(INFO)) if seen.path == "/info" else Reply(503, json_body(health))
        )

    with http_standin(route) as server, KsqlClient(server.url) as client:
        info = client.server_info()
        status = client.healthcheck()
    assert (info.version, info.server_status, info.ksql_service_id) == (
        "0.29.0",
        "RUNNING",
        "default_",
    )
    assert status.is_healthy is False and status.details == {"kafka": False, "metastore": True}


def test_wait_until_ready_polls_through_not_ready() -> None:
    calls = {"ksql": 0}

    def route(seen: Seen) -> Reply:
        if seen.path == "/info":
            return Reply(200, json_body(INFO))
        calls["ksql"] += 1
        if calls["ksql"] < 3:
            return Reply(503, json_body(NOT_READY))
        return Reply(200, json_body([{"@type": "streams", "streams": []}]))

    with http_standin(route) as server, KsqlClient(server.url) as client:
        assert client.wait_until_ready(10, poll_s=0.05).version == "0.29.0"
    assert calls["ksql"] == 3


def test_wait_until_ready_times_out_on_closed_port() -> None:
    with KsqlClient(f"http://127.0.0.1:{closed_port()}") as client:
        started = time.monotonic()
        with pytest.raises(KsqlTimeout) as info:
            client.wait_until_ready(0.8, poll_s=0.1)
    assert 0.7 <= time.monotonic() - started < 3.0
    assert "not ready within 0.8s" in str(info.value)
    assert isinstance(info.value.__cause__, KsqlTransportError)


def test_wait_until_ready_fails_fast_on_auth() -> None:
    bad = Reply(401, json_body({"@type": "generic_error", "error_code": 40100, "message": "no"}))
    with http_standin(lambda seen: bad) as server:
        client = KsqlClient(server.url, username="k", password=SECRET)
        with client, pytest.raises(KsqlAuthError):
            client.wait_until_ready(30)


# -- configuration -------------------------------------------------------------------


def test_from_env(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("not a real cert")
    env = {
        "CART_KSQLDB_URL": "https://ksql.example:443",
        "CART_KSQLDB_USERNAME": "KEY",
        "CART_KSQLDB_PASSWORD": SECRET,
        "CART_KSQLDB_TIMEOUT_S": "7.5",
        "CART_KSQLDB_VERIFY": "false",
    }
    with KsqlClient.from_env(env) as client:
        assert client.url == "https://ksql.example" and client.timeout == 7.5
        assert SECRET not in repr(client) and client.username == "KEY"
    with KsqlClient.from_env({}) as client:
        assert client.url == "http://127.0.0.1:8088" and client.username is None


@pytest.mark.parametrize(
    "env",
    [
        {"CART_KSQLDB_USERNAME": "only-user"},
        {"CART_KSQLDB_PASSWORD": SECRET},
        {"CART_KSQLDB_TIMEOUT_S": "soon"},
        {"CART_KSQLDB_TIMEOUT_S": "-1"},
        {"CART_KSQLDB_VERIFY": "/no/such/ca.pem"},
        {"CART_KSQLDB_URL": "ftp://host"},
        {"CART_KSQLDB_URL": "not a url"},
    ],
)
def test_from_env_rejects_bad_settings(env: dict[str, str]) -> None:
    with pytest.raises(KsqlConfigError) as info:
        KsqlClient.from_env(env)
    assert SECRET not in str(info.value)
