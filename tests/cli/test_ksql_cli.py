"""``cart-pipeline ksql`` and ``tail`` as a user runs them: a subprocess against the session
engine. Each test owns uniquely named sources, so the tests share one engine safely."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from cart_pipeline.cli.ksql_render import source_identifier, statement_kind, terminated
from cart_pipeline.ksql import KsqlClient

CLI = [sys.executable, "-m", "cart_pipeline.cli"]
EVENTS = [("ann", "apple", 2), ("bob", "pear", 3), ("ann", "apple", -1)]


def run(env: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*CLI, *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.fixture
def env(ksqldb_url: str) -> dict[str, str]:
    """The user's environment: the server comes from CART_KSQLDB_URL, as documented."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("CART_CLI", "CART_TAIL"))}
    environ.update({"CART_KSQLDB_URL": ksqldb_url, "COLUMNS": "200"})
    return environ


@pytest.fixture
def events_stream(ksqldb_url: str, unique_name: str) -> Iterator[str]:
    """A stream shaped like the pipeline's event log, holding three events."""
    name = unique_name.upper()
    with KsqlClient(ksqldb_url, timeout=30) as ksql:
        ksql.execute(
            f"CREATE STREAM {name} (CUSTOMER STRING KEY, ITEM STRING, QTY INTEGER) "
            f"WITH (KAFKA_TOPIC='{unique_name}', PARTITIONS=1, VALUE_FORMAT='JSON');"
        )
        for customer, item, qty in EVENTS:
            ksql.insert_values(name, {"CUSTOMER": customer, "ITEM": item, "QTY": qty})
    yield name
    with KsqlClient(ksqldb_url, timeout=30) as ksql:
        ksql.execute(f"DROP STREAM IF EXISTS {name} DELETE TOPIC;")


def test_statement_routing() -> None:
    assert statement_kind("select * from t") == "pull"
    assert statement_kind("-- a comment\n SELECT * FROM s EMIT  CHANGES LIMIT 1;") == "push"
    assert statement_kind("/* hi */ SHOW STREAMS") == "command"
    assert statement_kind("INSERT INTO s SELECT * FROM t EMIT CHANGES;") == "command"
    assert terminated("SHOW STREAMS  ") == "SHOW STREAMS;"
    assert source_identifier("shopping_cart_events") == "`SHOPPING_CART_EVENTS`"
    assert source_identifier("Mixed Case") == "`Mixed Case`"


def test_ddl_and_describe_as_tables(env: dict[str, str], unique_name: str) -> None:
    name = unique_name.upper()
    create = (
        f"CREATE STREAM {name} (ID STRING KEY, N INTEGER) "
        f"WITH (KAFKA_TOPIC='{unique_name}', PARTITIONS=1, VALUE_FORMAT='JSON')"  # no ';'
    )
    try:
        done = run(env, "ksql", create)
        assert done.returncode == 0, done.stderr
        assert "SUCCESS" in done.stdout

        done = run(env, "ksql", f"DESCRIBE {name}")
        assert done.returncode == 0, done.stderr
        assert name in done.stdout and "INTEGER" in done.stdout and "KEY" in done.stdout

        done = run(env, "ksql", "SHOW STREAMS")
        assert done.returncode == 0, done.stderr
        assert name in done.stdout and unique_name in done.stdout
    finally:
        run(env, "ksql", f"DROP STREAM IF EXISTS {name} DELETE TOPIC;")


def test_json_output_of_entities_and_rows(env: dict[str, str], events_stream: str) -> None:
    done = run(env, "ksql", "--json", "SHOW STREAMS;")
    assert done.returncode == 0, done.stderr
    entities = json.loads(done.stdout)
    assert entities[0]["@type"] == "streams"
    assert events_stream in {s["name"] for s in entities[0]["streams"]}

    # A push query with LIMIT ends by itself: JSON Lines, one object per row.
    query = f"SELECT CUSTOMER, ITEM, QTY FROM {events_stream} EMIT CHANGES LIMIT 3"
    done = run(env, "ksql", "--json", "-p", "auto.offset.reset=earliest", query)
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    assert rows == [{"CUSTOMER": c, "ITEM": i, "QTY": q} for c, i, q in EVENTS]


def test_pull_query_as_table_and_json(
    env: dict[str, str], events_stream: str, ksqldb_url: str
) -> None:
    table = f"{events_stream}_TOTALS"
    with KsqlClient(ksqldb_url, timeout=30) as ksql:
        ksql.execute(
            f"CREATE TABLE {table} WITH (KEY_FORMAT='JSON') AS SELECT CUSTOMER, ITEM, "
            f"SUM(QTY) AS TOTAL FROM {events_stream} GROUP BY CUSTOMER, ITEM EMIT CHANGES;",
            properties={"auto.offset.reset": "earliest"},
        )
        try:
            # The persistent query folds the three events; wait (bounded) until it has.
            deadline = time.monotonic() + 90
            expected = [{"CUSTOMER": "ann", "ITEM": "apple", "TOTAL": 1},
                        {"CUSTOMER": "bob", "ITEM": "pear", "TOTAL": 3}]  # fmt: skip
            while sorted(ksql.query(f"SELECT * FROM {table};").dicts(), key=str) != expected:
                assert time.monotonic() < deadline, "the table never reached the totals"
                time.sleep(0.5)

            done = run(env, "ksql", "--json", f"SELECT * FROM {table}")
            assert done.returncode == 0, done.stderr
            assert sorted(json.loads(done.stdout), key=str) == expected

            done = run(env, "ksql", f"SELECT * FROM {table} WHERE CUSTOMER = 'bob'")
            assert done.returncode == 0, done.stderr
            assert "TOTAL" in done.stdout and "pear" in done.stdout
            assert "apple" not in done.stdout
            assert "1 row(s)" in done.stdout
        finally:
            ksql.execute(f"DROP TABLE IF EXISTS {table} DELETE TOPIC;")


def test_error_statement_prints_server_message(env: dict[str, str], unique_name: str) -> None:
    done = run(env, "ksql", f"SELECT * FROM {unique_name}_MISSING")
    assert done.returncode == 1
    assert f"{unique_name.upper()}_MISSING does not exist" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout

    done = run(env, "ksql", "SELEC * FROM nothing")
    assert done.returncode == 1
    assert "Syntax Error" in done.stderr or "syntax" in done.stderr.lower()
    assert "Traceback" not in done.stderr


def test_unreachable_server_is_one_clear_message(env: dict[str, str]) -> None:
    done = run(env, "ksql", "--url", "http://127.0.0.1:9", "SHOW STREAMS")
    assert done.returncode == 1
    assert "cart-pipeline up" in done.stderr
    assert "Traceback" not in done.stderr


def test_tail_with_limit(env: dict[str, str], events_stream: str) -> None:
    done = run(env, "tail", "--stream", events_stream, "--from-beginning", "--limit", "2")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split() == ["CUSTOMER", "ITEM", "QTY"]
    assert [line.split() for line in lines[1:]] == [["ann", "apple", "2"], ["bob", "pear", "3"]]
    assert "2 event(s)" in done.stderr

    # The same through environment variables only, as JSON Lines.
    env = {**env, "CART_TAIL_STREAM": events_stream, "CART_TAIL_FROM_BEGINNING": "1",
           "CART_TAIL_LIMIT": "3", "CART_CLI_JSON": "1"}  # fmt: skip
    done = run(env, "tail")
    assert done.returncode == 0, done.stderr
    assert [json.loads(line)["QTY"] for line in done.stdout.splitlines()] == [2, 3, -1]


def test_tail_of_missing_stream_fails_clearly(env: dict[str, str], unique_name: str) -> None:
    done = run(env, "tail", "--stream", unique_name, "--limit", "1")
    assert done.returncode == 1
    assert "does not exist" in done.stderr
    assert "Traceback" not in done.stderr


def test_tail_stops_cleanly_on_ctrl_c(env: dict[str, str], events_stream: str) -> None:
    process = subprocess.Popen(
        [*CLI, "tail", "--stream", events_stream, "--from-beginning", "--json"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        # Rows arrive while the query keeps running (readline is bounded by the test timeout).
        seen = [json.loads(process.stdout.readline()) for _ in EVENTS]
        assert [r["QTY"] for r in seen] == [2, 3, -1]
        assert process.poll() is None, "tail without --limit must keep following"
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=30)
    assert process.returncode == 0, err
    assert "Traceback" not in err and "Aborted" not in err
    assert out == ""
