"""The tutorial's statements, exactly as written, through curl and through our client.

They name fixed objects (`shopping_cart_events`), so this module runs on a private broker
and engine of its own rather than the shared ones.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cart_pipeline.embedded import KafkaBroker, KafkaConfig
from cart_pipeline.embedded import process as proc
from cart_pipeline.ksql import KsqlClient
from tests.engine.conftest import PrivateEngine

pytestmark = pytest.mark.timeout(300)

SET_EARLIEST = "SET 'auto.offset.reset'='earliest';"
CREATE_STREAM = """CREATE STREAM shopping_cart_events (customer VARCHAR, item VARCHAR, qty INT)
  WITH (kafka_topic='shopping_cart_events', value_format='json', partitions=1);"""
INSERTS = [
    "INSERT INTO shopping_cart_events (customer, item, qty) VALUES ('bob', 'pants', 2);",
    "INSERT INTO shopping_cart_events (customer, item, qty) VALUES ('bob', 'pants', -1);",
    "INSERT INTO shopping_cart_events (customer, item, qty) VALUES ('bob', 't-shirts', 1);",
    "INSERT INTO shopping_cart_events (customer, item, qty) VALUES ('bob', 'hats', 1);",
]
CREATE_TABLE = """CREATE TABLE current_shopping_cart WITH (KEY_FORMAT='JSON') AS
  SELECT customer, item, SUM(qty) as total_qty FROM shopping_cart_events
  GROUP BY customer, item EMIT CHANGES;"""
PROPS = {"auto.offset.reset": "earliest", "ksql.streams.commit.interval.ms": "3000"}
BOB = {("bob", "pants"): 1, ("bob", "t-shirts"): 1, ("bob", "hats"): 1}


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateEngine]:
    data = tmp_path_factory.mktemp("tutorial")
    broker = KafkaBroker(
        KafkaConfig(data / "kafka", port=proc.free_port(), controller_port=proc.free_port())
    ).start()
    engine = PrivateEngine(broker.config.bootstrap_servers, data / "engine").start()
    try:
        yield engine
    finally:
        engine.stop()
        broker.stop()


def curl(url: str, path: str, body: dict, accept: str | None = None) -> tuple[int, str]:
    args = ["curl", "-sS", "--max-time", "30", "-o", "-", "-w", "\n%{http_code}",
            "-X", "POST", f"{url}{path}", "-H", "Content-Type: application/vnd.ksql.v1+json",
            "--data-binary", json.dumps(body)]  # fmt: skip
    if accept:
        args += ["-H", f"Accept: {accept}"]
    done = subprocess.run(args, capture_output=True, text=True, timeout=60, check=True)
    text, _, status = done.stdout.rpartition("\n")
    return int(status), text


def bob_from_pull(engine: PrivateEngine) -> dict[tuple[str, str], int]:
    status, text = curl(
        engine.url, "/query-stream",
        {"sql": "SELECT * FROM current_shopping_cart WHERE customer='bob';", "properties": {}},
    )  # fmt: skip
    assert status == 200, text
    lines = [json.loads(line) for line in text.splitlines() if line.strip()]
    header, rows = lines[0], lines[1:]
    assert header["columnNames"] == ["CUSTOMER", "ITEM", "TOTAL_QTY"]
    return {(r[0], r[1]): r[2] for r in rows}


def test_tutorial_through_curl(engine: PrivateEngine) -> None:
    status, text = curl(
        engine.url, "/ksql",
        {"ksql": f"{SET_EARLIEST}\n{CREATE_STREAM}", "streamsProperties": {}},
    )  # fmt: skip
    assert status == 200, text
    assert json.loads(text)[0]["commandStatus"]["status"] == "SUCCESS"
    for statement in INSERTS:
        status, text = curl(engine.url, "/ksql", {"ksql": statement, "streamsProperties": {}})
        assert status == 200, text
    status, text = curl(engine.url, "/ksql", {"ksql": CREATE_TABLE, "streamsProperties": PROPS})
    assert status == 200, text
    assert json.loads(text)[0]["commandStatus"]["queryId"].startswith("CTAS_CURRENT_SHOPPING_CART")
    deadline = time.monotonic() + 60
    while (got := bob_from_pull(engine)) != BOB:
        assert time.monotonic() < deadline, got
        time.sleep(0.5)
    # A SELECT sent to /ksql is refused the ksqlDB way.
    status, text = curl(
        engine.url, "/ksql",
        {"ksql": "SELECT * FROM shopping_cart_events EMIT CHANGES;", "streamsProperties": {}},
    )  # fmt: skip
    assert status == 400 and json.loads(text)["error_code"] == 40002


def test_tutorial_push_queries_through_the_client(engine: PrivateEngine, tmp_path: Path) -> None:
    with KsqlClient(engine.url) as ksql:
        # The stream, from the beginning: the four inserts in order.
        with ksql.stream(
            "SELECT * FROM shopping_cart_events EMIT CHANGES;", properties=PROPS, limit=4
        ) as query:
            events = [tuple(row) for row in query]
        assert events == [("bob", "pants", 2), ("bob", "pants", -1), ("bob", "t-shirts", 1),
                          ("bob", "hats", 1)]  # fmt: skip
        with ksql.stream(
            "SELECT * FROM current_shopping_cart EMIT CHANGES;", properties=PROPS, limit=3
        ) as query:
            latest = {(row[0], row[1]): row[2] for row in query}
        assert latest == BOB
        pulled = ksql.query("SELECT * FROM current_shopping_cart;").rows
        assert {(r[0], r[1]): r[2] for r in pulled} == BOB
