"""ksqlDB's command bookkeeping: /status of each command, and `commandSequenceNumber`.

A CREATE/DROP/TERMINATE answers `currentStatus` with a command id and the command's offset
in the command topic (its sequence number). /status/{id} answers that command's status, also
after a restart (rebuilt from the command topic); a request carrying `commandSequenceNumber`
runs only once that command has been applied, or answers 50301 after the server's timeout.
"""

from __future__ import annotations

import threading
import time
from typing import Any
from urllib.parse import quote

import httpx
import orjson
from confluent_kafka import Consumer, KafkaError, TopicPartition

from cart_pipeline.ksql import CommandStatus
from cart_pipeline.ksql import KsqlClient as ProjectClient
from tests.engine.conftest import KsqlClient, PrivateEngine

TIMEOUT_MESSAGE = (
    "Timed out while waiting for a previous command to execute. command sequence number: "
)


def _status_path(command_id: str) -> str:
    return "/status/" + "/".join(quote(part, safe="") for part in command_id.split("/"))


def _command_topic_statements(bootstrap: str, topic: str, offsets: list[int]) -> dict[int, str]:
    """The statement stored at each offset of the command topic (read_committed, bounded)."""
    c = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"cmd-{time.time_ns()}",
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
        }
    )
    found: dict[int, str] = {}
    try:
        c.assign([TopicPartition(topic, 0, min(offsets))])
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not set(offsets) <= set(found):
            for m in c.consume(100, 0.5):
                err = m.error()
                if err is not None:
                    assert err.code() == KafkaError._PARTITION_EOF, str(err)
                    continue
                found[m.offset() or 0] = orjson.loads(m.value() or b"{}")["statement"]
    finally:
        c.close()
    return found


def test_status_of_each_command(client: KsqlClient, ksqldb_url: str, unique_name: str) -> None:
    stream, table = unique_name, f"{unique_name}_t"
    with ProjectClient(ksqldb_url) as ksql:
        created = ksql.execute(
            f"CREATE STREAM {stream} (item VARCHAR, qty INT) WITH (kafka_topic='{stream}', "
            "value_format='json', partitions=1);"
            f"CREATE TABLE {table} AS SELECT item, SUM(qty) AS total FROM {stream} GROUP BY item;"
        )
    s, t = created
    assert isinstance(s, CommandStatus) and isinstance(t, CommandStatus)
    assert s.command_id == f"stream/`{stream.upper()}`/create"
    assert t.command_id == f"table/`{table.upper()}`/create"
    assert t.query_id is not None

    r = client.http.get(_status_path(s.command_id), headers={"Accept": "application/json"})
    assert r.status_code == 200, r.text
    assert r.json() == {"status": "SUCCESS", "message": "Stream created", "queryId": None}
    r = client.http.get(_status_path(t.command_id))
    assert r.json() == {
        "status": "SUCCESS",
        "message": f"Created query with ID {t.query_id}",
        "queryId": t.query_id,
    }
    # CommandId's type and action are case-insensitive, as in ksqlDB
    upper = _status_path(s.command_id.replace("stream/", "STREAM/").replace("/create", "/CREATE"))
    assert client.http.get(upper).json()["status"] == "SUCCESS"

    (terminated,) = client.ksql(f"TERMINATE {t.query_id};")
    assert terminated["commandId"] == f"terminate/{t.query_id}/execute"
    r = client.http.get(_status_path(terminated["commandId"]))
    assert r.json() == {"status": "SUCCESS", "message": "Query terminated.", "queryId": None}

    listing = client.http.get("/status").json()
    assert set(listing) == {"commandStatuses"}
    statuses = listing["commandStatuses"]
    for command_id in (s.command_id, t.command_id, terminated["commandId"]):
        assert statuses[command_id] == "SUCCESS"

    r = client.http.get(_status_path(f"stream/`{unique_name}_NOPE`/create"))
    assert r.status_code == 404
    assert r.json() == {
        "@type": "generic_error",
        "error_code": 40400,
        "message": "Command not found",
    }


def test_sequence_numbers_are_command_topic_offsets(
    client: KsqlClient, unique_name: str, kafka_bootstrap: str
) -> None:
    first, second = unique_name, f"{unique_name}_b"
    texts, seqs = [], []
    for name in (first, second):
        text = (
            f"CREATE STREAM {name} (v INT) WITH (kafka_topic='{name}', value_format='json', "
            "partitions=1);"
        )
        (entity,) = client.ksql(text)
        texts.append(text)
        seqs.append(entity["commandSequenceNumber"])
    assert seqs[1] > seqs[0] >= 0
    stored = _command_topic_statements(
        kafka_bootstrap, "_confluent-ksql-default__command_topic", seqs
    )
    assert [stored[s] for s in seqs] == texts


def test_command_sequence_number_timeout(client: KsqlClient, unique_name: str) -> None:
    (entity,) = client.ksql(
        f"CREATE STREAM {unique_name} (v INT) WITH (kafka_topic='{unique_name}', "
        "value_format='json', partitions=1);"
    )
    seq = entity["commandSequenceNumber"]
    # an applied command: the request runs at once
    r = client.http.post(
        "/ksql", json={"ksql": f"DESCRIBE {unique_name};", "commandSequenceNumber": seq}
    )
    assert r.status_code == 200, r.text
    assert r.json()[0]["sourceDescription"]["name"] == unique_name.upper()

    # a command that never comes: 503 after ksql.server.command.response.timeout.ms (5 s)
    future = seq + 1_000_000
    expected = {
        "@type": "generic_error",
        "error_code": 50301,
        "message": TIMEOUT_MESSAGE + str(future),
    }
    r = client.http.post("/ksql", json={"ksql": "SHOW STREAMS;", "commandSequenceNumber": future})
    assert r.status_code == 503 and r.json() == expected
    r = client.http.post(
        "/query", json={"ksql": f"SELECT * FROM {unique_name};", "commandSequenceNumber": future}
    )
    assert r.status_code == 503 and r.json() == expected

    r = client.http.post("/ksql", json={"ksql": "SHOW STREAMS;", "commandSequenceNumber": "x"})
    assert r.status_code == 400 and r.json()["error_code"] == 40000


def test_statuses_survive_restart_and_requests_read_their_writes(
    private_engine: PrivateEngine, unique_name: str
) -> None:
    private_engine.start()
    client = KsqlClient(private_engine.url)
    stream, table = unique_name, f"{unique_name}_t"
    try:
        entities = client.ksql(
            f"CREATE STREAM {stream} (item VARCHAR, qty INT) WITH (kafka_topic='{stream}', "
            "value_format='json', partitions=1);"
            f"CREATE TABLE {table} AS SELECT item, SUM(qty) AS total FROM {stream} "
            "GROUP BY item;"
        )
        before = {e["commandId"]: e["commandStatus"] for e in entities}
        last_seq = entities[-1]["commandSequenceNumber"]

        # Read-your-writes: a request naming the *next* command waits for it to be applied.
        # Each command is its own transaction, so the next one lands 2 offsets later.
        next_seq = last_seq + 2
        waited: dict[str, Any] = {}

        def describe_next() -> None:
            with httpx.Client(base_url=private_engine.url, timeout=30) as http:
                waited["r"] = http.post(
                    "/ksql",
                    json={"ksql": f"DESCRIBE {stream}_next;", "commandSequenceNumber": next_seq},
                )

        waiter = threading.Thread(target=describe_next)
        waiter.start()
        (created,) = client.ksql(
            f"CREATE STREAM {stream}_next (v INT) WITH (kafka_topic='{stream}_next', "
            "value_format='json', partitions=1);"
        )
        waiter.join(30)
        assert created["commandSequenceNumber"] == next_seq
        assert waited["r"].status_code == 200, waited["r"].text
        assert waited["r"].json()[0]["sourceDescription"]["name"] == f"{stream}_next".upper()
        before[created["commandId"]] = created["commandStatus"]
        client.close()

        private_engine.stop()
        private_engine.start()
        client = KsqlClient(private_engine.url)
        for command_id, status in before.items():
            r = client.http.get(_status_path(command_id))
            assert r.status_code == 200, (command_id, r.text)
            assert r.json() == status
        assert set(client.http.get("/status").json()["commandStatuses"]) == set(before)
        # the replayed commands count as applied
        r = client.http.post(
            "/ksql", json={"ksql": "SHOW STREAMS;", "commandSequenceNumber": next_seq}
        )
        assert r.status_code == 200, r.text
    finally:
        client.close()
