"""Bad records are skipped and logged to the processing log; the query keeps running."""

from __future__ import annotations

import base64
import time
from typing import Any

import orjson
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Producer, TopicPartition

from tests.engine.conftest import KsqlClient, wait_for


def _log_records(bootstrap: str, topic: str) -> list[dict[str, Any]]:
    c = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"plog-{time.time_ns()}",
            "enable.partition.eof": True,
            "enable.auto.commit": False,
        }
    )
    c.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    out: list[dict[str, Any]] = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        msgs = c.consume(500, 0.5)
        # records first: the batch that carries the end-of-partition event may carry the
        # newest records too
        out += [orjson.loads(m.value() or b"null") for m in msgs if not m.error()]
        if any(
            (e := m.error()) is not None and e.code() == KafkaError._PARTITION_EOF for m in msgs
        ):
            break
    c.close()
    return out


def test_malformed_records_are_logged_not_fatal(
    client: KsqlClient, unique_name: str, kafka_bootstrap: str
) -> None:
    stream, table = unique_name, f"{unique_name}_t"
    client.ksql(
        f"CREATE STREAM {stream} (item VARCHAR, qty INT) WITH (kafka_topic='{stream}', "
        "value_format='json', partitions=1);"
        "SET 'auto.offset.reset'='earliest';"
        f"CREATE TABLE {table} AS SELECT item, SUM(qty) AS total, COUNT(*) AS n FROM {stream} "
        "GROUP BY item;"
    )
    producer = Producer({"bootstrap.servers": kafka_bootstrap, "partitioner": "murmur2_random"})
    for value in [
        b'{"item": "hat", "qty": 2}',
        b"this is not json",
        b'{"ITEM": "hat", "QTY": "3"}',  # case-insensitive field, numeric string coerced
        b'{"item": "hat", "qty": "three"}',  # cannot coerce: skipped
        b'{"item": null, "qty": 5}',  # NULL group-by value: dropped and logged
        b'{"item": "hat", "extra": true}',  # missing qty -> NULL, SUM skips it
    ]:
        producer.produce(stream, value=value)
    assert producer.flush(30) == 0
    wait_for(lambda: client.pull(f"SELECT * FROM {table};")[1] == [["hat", 5, 3]], timeout=40)

    (queries,) = client.ksql("SHOW QUERIES;")
    mine = [q for q in queries["queries"] if q["sinks"] == [table.upper()]]
    assert mine[0]["state"] == "RUNNING"
    query_id = mine[0]["id"]

    def logged() -> list[dict[str, Any]] | None:
        records = [
            r
            for r in _log_records(kafka_bootstrap, "default_ksql_processing_log")
            if r["LOGGER"].startswith(f"processing.{query_id}.")
        ]
        return records if len(records) >= 3 else None

    records = logged() or wait_for(logged, timeout=20)
    types = sorted(r["MESSAGE"]["TYPE"] for r in records)
    assert types == [0, 0, 1]
    deser = [r["MESSAGE"]["DESERIALIZATIONERROR"] for r in records if r["MESSAGE"]["TYPE"] == 0]
    assert all(d["topic"] == stream for d in deser)
    (streams,) = client.ksql("SHOW STREAMS;")
    assert "KSQL_PROCESSING_LOG" in {s["name"] for s in streams["streams"]}


def test_describe_extended_shows_query_lag(client: KsqlClient, unique_name: str) -> None:
    stream, table = unique_name, f"{unique_name}_t"
    client.ksql(
        f"CREATE STREAM {stream} (item VARCHAR, qty INT) WITH (kafka_topic='{stream}', "
        "value_format='json', partitions=1);"
        "SET 'auto.offset.reset'='earliest';"
        f"CREATE TABLE {table} AS SELECT item, SUM(qty) AS total FROM {stream} GROUP BY item;"
    )
    for qty in (1, 2, 3):
        client.ksql(f"INSERT INTO {stream} (item, qty) VALUES ('hat', {qty});")

    def caught_up() -> dict[str, Any] | None:
        (desc,) = client.ksql(f"DESCRIBE {table} EXTENDED;")
        d = desc["sourceDescription"]
        (summary,) = d["queryOffsetSummaries"]
        (topic,) = summary["topicSummaries"]
        (offsets,) = topic["offsets"]
        ok = offsets["consumerOffset"] == offsets["logEndOffset"] == 3
        return d if ok else None

    d = wait_for(caught_up, timeout=40)
    query_id = d["writeQueries"][0]["id"]
    summary = d["queryOffsetSummaries"][0]
    assert summary["groupId"] == f"_confluent-ksql-default_query_{query_id}"
    assert summary["topicSummaries"][0]["kafkaTopic"] == stream
    assert d["extended"] is True and d["partitions"] == 1 and d["replication"] == 1


def test_push_query_skips_and_logs_bad_records(
    client: KsqlClient, unique_name: str, kafka_bootstrap: str
) -> None:
    client.ksql(
        f"CREATE STREAM {unique_name} (item VARCHAR, qty INT) WITH (kafka_topic='{unique_name}', "
        "value_format='json', partitions=1);"
    )
    poison = b"not json at all"
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    for value in (b'{"item": "hat", "qty": 1}', poison, b'{"item": "cap", "qty": 2}'):
        producer.produce(unique_name, value=value)
    assert producer.flush(30) == 0

    header, rows = client.push(
        f"SELECT * FROM {unique_name} EMIT CHANGES LIMIT 2;",
        {"auto.offset.reset": "earliest"},
        until=lambda rows: len(rows) >= 2,
    )
    assert rows == [["hat", 1], ["cap", 2]]
    query_id = header["queryId"]
    assert query_id.startswith("transient_")

    def logged() -> list[dict[str, Any]] | None:
        records = [
            r
            for r in _log_records(kafka_bootstrap, "default_ksql_processing_log")
            if r["LOGGER"] == f"processing.{query_id}.KsqlTopic.Source.deserializer"
        ]
        return records or None

    (record,) = wait_for(logged, timeout=20)
    assert record["LEVEL"] == "ERROR" and record["MESSAGE"]["TYPE"] == 0
    error = record["MESSAGE"]["DESERIALIZATIONERROR"]
    assert error["TARGET"] == "value" and error["topic"] == unique_name
    assert base64.b64decode(error["RECORDB64"]) == poison
    assert error["ERRORMESSAGE"].startswith(
        f"Failed to deserialize value from topic: {unique_name}"
    )
