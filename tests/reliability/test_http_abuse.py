"""Hostile HTTP against the engine: every bad request gets a 4xx in ksqlDB's error shape, quickly,
and afterwards the server is healthy and an earlier persistent query is still counting."""

from __future__ import annotations

import socket
import time
from typing import Any
from urllib.parse import urlparse

import httpx
import orjson
import pytest
from confluent_kafka import Producer

from tests.engine.conftest import KsqlClient as RawClient
from tests.engine.conftest import wait_for

KSQL_JSON = "application/vnd.ksql.v1+json"


def _error_shape(r: httpx.Response, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text[:500]
    body = r.json()
    assert isinstance(body, dict)
    assert body["@type"] in ("generic_error", "statement_error")
    assert body["error_code"] // 100 == status
    assert isinstance(body["message"], str) and body["message"]
    return body


@pytest.fixture
def counting_query(raw: RawClient, unique_name: str, kafka_bootstrap: str) -> tuple[str, str]:
    stream, table = unique_name, f"{unique_name}_n"
    raw.ksql(
        "SET 'auto.offset.reset'='earliest';"
        f"CREATE STREAM {stream} (customer VARCHAR, item VARCHAR, qty INT) "
        f"WITH (kafka_topic='{stream}', value_format='json', partitions=1);"
        f"CREATE TABLE {table} WITH (KEY_FORMAT='JSON') AS SELECT customer, item, "
        f"SUM(qty) AS total_qty FROM {stream} GROUP BY customer, item EMIT CHANGES;"
    )
    _produce(kafka_bootstrap, stream, 3)
    wait_for(lambda: _total(raw, table) == 3, timeout=60)
    return stream, table


def _produce(bootstrap: str, topic: str, n: int) -> None:
    p = Producer({"bootstrap.servers": bootstrap})
    for _ in range(n):
        p.produce(topic, value=b'{"customer": "c", "item": "i", "qty": 1}', key=b"c")
    assert p.flush(30) == 0


def _total(raw: RawClient, table: str) -> int | None:
    _, rows = raw.pull(f"SELECT * FROM {table};")
    return rows[0][2] if rows else None


def test_hostile_requests_get_ksqldb_errors_and_the_server_survives(
    raw: RawClient, counting_query: tuple[str, str], kafka_bootstrap: str
) -> None:
    stream, table = counting_query
    http = httpx.Client(base_url=raw.url, timeout=30)
    headers = {"Content-Type": KSQL_JSON, "Accept": KSQL_JSON}
    for path in ("/ksql", "/query", "/query-stream"):
        # Malformed JSON.
        body = _error_shape(http.post(path, content=b'{"ksql": "SHOW', headers=headers), 400)
        assert body["error_code"] == 40000
        # JSON, but not an object.
        for doc in (b"[1, 2]", b'"SHOW STREAMS;"', b"null", b"42"):
            _error_shape(http.post(path, content=doc, headers=headers), 400)
        # No statement field / statement of the wrong type.
        for doc in (b"{}", b'{"streamsProperties": {}}', b'{"ksql": 5, "sql": [1]}'):
            body = _error_shape(http.post(path, content=doc, headers=headers), 400)
            assert "missing" in body["message"]
        # Not UTF-8.
        _error_shape(http.post(path, content=b"\xff\xfe\xfd", headers=headers), 400)

    # Wrong content type with a non-JSON body: still ksqlDB's 400, not a crash.
    r = http.post("/ksql", content=b"SHOW STREAMS;", headers={"Content-Type": "text/plain"})
    _error_shape(r, 400)
    # ksqlDB ignores Content-Type and reads the body as JSON: a valid body still runs.
    r = http.post(
        "/ksql",
        content=orjson.dumps({"ksql": "SHOW STREAMS;"}),
        headers={"Content-Type": "text/plain"},
    )
    assert r.status_code == 200 and r.json()[0]["@type"] == "streams"

    # An oversized body is refused promptly, not buffered into memory.
    big = b'{"ksql": "' + b"x" * (20 * 1024 * 1024) + b'"}'
    started = time.monotonic()
    r = http.post("/ksql", content=big, headers=headers)
    assert time.monotonic() - started < 20
    body = _error_shape(r, 413)
    assert "too large" in body["message"]
    # Same on the streaming endpoint.
    started = time.monotonic()
    r = http.post("/query-stream", content=big, headers=headers)
    _error_shape(r, 413)
    assert time.monotonic() - started < 20

    # Chunked, with no Content-Length: cut off at the limit all the same.
    started = time.monotonic()
    r = http.post("/ksql", content=iter([big[i : i + 65536] for i in range(0, len(big), 65536)]),
                  headers=headers)  # fmt: skip
    _error_shape(r, 413)
    assert time.monotonic() - started < 20

    # A client that disconnects in the middle of a push query's stream.
    url = urlparse(raw.url)
    for _ in range(3):
        payload = orjson.dumps(
            {"sql": f"SELECT * FROM {stream} EMIT CHANGES;", "properties": {
                "auto.offset.reset": "earliest"}}
        )  # fmt: skip
        with socket.create_connection((url.hostname, url.port), timeout=10) as sock:
            sock.sendall(
                b"POST /query-stream HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                + f"Content-Length: {len(payload)}\r\n\r\n".encode()
                + payload
            )
            got = b""
            while b"queryId" not in got:
                chunk = sock.recv(4096)
                assert chunk, got
                got += chunk
            assert got.startswith(b"HTTP/1.1 200")
        # Socket closed mid-stream (no /close-query).
    # Half a request, then gone.
    with socket.create_connection((url.hostname, url.port), timeout=10) as sock:
        sock.sendall(b'POST /ksql HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{"ksql":')

    # The server is healthy, and the persistent query is RUNNING and still counting.
    assert http.get("/healthcheck").json()["isHealthy"] is True
    (queries,) = raw.ksql("SHOW QUERIES;")
    mine = [q for q in queries["queries"] if q["sinks"] == [table.upper()]]
    assert len(mine) == 1 and mine[0]["state"] == "RUNNING"
    _produce(kafka_bootstrap, stream, 4)
    wait_for(lambda: _total(raw, table) == 7, timeout=60)

    http.close()
