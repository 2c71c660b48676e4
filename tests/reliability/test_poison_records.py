"""Poison records interleaved with good ones: the query survives, each rejected record is
logged to the processing log, and the table equals the independent recomputation."""

from __future__ import annotations

import time
from typing import Any

import orjson
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Producer, TopicPartition

from cart_pipeline.kafka_io import KafkaSettings, Topics
from cart_pipeline.reconcile import recompute
from cart_pipeline.reconcile.decode import BAD_FIELD_TYPE, NOT_JSON
from tests.engine.conftest import KsqlClient as RawClient
from tests.engine.conftest import wait_for

PROCESSING_LOG = "default_ksql_processing_log"

GOOD = b'{"customer": "ann", "item": "hat", "qty": 2}'
#: (value, what ksqlDB does with it)
POISON: list[tuple[bytes, str]] = [
    (b'{"customer": "ann", "item": "hat", "qty": ', "reject"),  # truncated JSON
    (b"this is not json", "reject"),
    (b'{"customer": "ann", "item": "hat", "qty": "lots"}', "reject"),
    (b'{"customer": "ann", "item": "hat", "qty": true}', "reject"),
    (b'{"customer": "ann", "item": "hat", "qty": {"n": 1}}', "reject"),
    (b"\xff\xfe\xfd not utf-8 \xc3\x28", "reject"),
    (b'{"customer": "\xff\xfe", "item": "hat", "qty": 1}', "reject"),  # invalid UTF-8 in JSON
    (b"", "reject"),  # empty value
    (b"   ", "reject"),  # whitespace only
    (b"[1, 2, 3]", "reject"),  # JSON, not an object
    (b'"just a string"', "reject"),
    (b"42", "reject"),
    (b'{"customer": "ann", "item": "hat"}', "null qty"),  # missing qty: SUM skips it
    (b'{"customer": "ann", "item": "hat", "qty": null}', "null qty"),
    (b'{"customer": "ann", "qty": 5}', "null key"),  # missing item
    (b'{"customer": null, "item": "hat", "qty": 5}', "null key"),
    (b'{"customer": "bob", "item": "big", "qty": 123456789012345678901234567890}', "wraps"),
    (b'{"customer": "bob", "item": "huge", "qty": 1e400}', "huge"),
    (b'{"customer": "bob", "item": "neg", "qty": -2147483649}', "wraps"),
    (b'{"customer": "bob", "item": "frac", "qty": 2.9}', "truncates"),
    (b'{"customer": "bob", "item": "str", "qty": "7"}', "coerced"),
    (b'{"CUSTOMER": "bob", "Item": "case", "QTY": 3}', "case-insensitive"),
    (b'{"customer": 17, "item": true, "qty": 1}', "scalars as text"),
    (b'{"customer": 2.50, "item": 1e7, "qty": 1}', "decimals as text"),
    (b'{"customer": "bob", "item": "extra", "qty": 1, "junk": [1, {"x": null}]}', "extra field"),
    (b'{"customer": "bob", "item": "trail", "qty": 1} trailing garbage', "first value"),
]


def _processing_log(bootstrap: str) -> list[dict[str, Any]]:
    c = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": f"plog-{time.time_ns()}",
        "enable.partition.eof": True,
        "enable.auto.commit": False,
    })  # fmt: skip
    c.assign([TopicPartition(PROCESSING_LOG, 0, OFFSET_BEGINNING)])
    out: list[dict[str, Any]] = []
    deadline = time.monotonic() + 30
    try:
        while time.monotonic() < deadline:
            msgs = c.consume(500, 0.5)
            out += [orjson.loads(m.value() or b"null") for m in msgs if not m.error()]
            if any((e := m.error()) is not None and e.code() == KafkaError._PARTITION_EOF
                   for m in msgs):  # fmt: skip
                break
    finally:
        c.close()
    return out


def _table(raw: RawClient, table: str) -> dict[tuple[str, str], int]:
    _, rows = raw.pull(f"SELECT * FROM {table};")
    return {(c, i): t for c, i, t in rows}


def test_poison_records_are_skipped_logged_and_reconciled(
    raw: RawClient, unique_name: str, kafka_bootstrap: str, kafka_settings: KafkaSettings
) -> None:
    stream, table = unique_name, f"{unique_name}_cart"
    raw.ksql(
        "SET 'auto.offset.reset'='earliest';\n"
        f"CREATE STREAM {stream} (customer VARCHAR, item VARCHAR, qty INT) "
        f"WITH (kafka_topic='{stream}', value_format='json', partitions=1);\n"
        f"CREATE TABLE {table} WITH (KEY_FORMAT='JSON') AS SELECT customer, item, "
        f"SUM(qty) AS total_qty FROM {stream} GROUP BY customer, item EMIT CHANGES;"
    )
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    written = 0
    for value, _ in POISON:
        for v in (GOOD, value):
            producer.produce(stream, value=v, key=b"k")
            written += 1
    producer.produce(stream, value=b'{"customer": "zed", "item": "last", "qty": 1}', key=b"k")
    written += 1
    assert producer.flush(30) == 0
    expected_rejects = sum(1 for _, kind in POISON if kind == "reject")

    ends = Topics(kafka_settings).end_offsets(stream)
    assert ends == {0: written}
    truth = recompute(kafka_settings, stream, ends)
    assert truth.records == written
    assert truth.rejected_total == expected_rejects
    assert set(truth.rejected) <= {NOT_JSON, "not_an_object", BAD_FIELD_TYPE}
    assert truth.null_keys == 2
    assert truth.totals[("ann", "hat")] == 2 * len(POISON)
    assert ("zed", "last") in truth.totals

    # The table converges to exactly the recomputed totals (bounded wait).
    seen: dict[tuple[str, str], int] = {}

    def converged() -> bool:
        seen.clear()
        seen.update(_table(raw, table))
        return seen.get(("zed", "last")) == 1 and seen == truth.totals

    try:
        wait_for(converged, timeout=60)
    except AssertionError:
        assert seen == truth.totals  # shows the difference
        raise

    (queries,) = raw.ksql("SHOW QUERIES;")
    mine = [q for q in queries["queries"] if q["sinks"] == [table.upper()]]
    assert len(mine) == 1 and mine[0]["state"] == "RUNNING"
    query_id = mine[0]["id"]

    def deserialization_errors() -> list[dict[str, Any]] | None:
        records = [
            r
            for r in _processing_log(kafka_bootstrap)
            if r["MESSAGE"]["TYPE"] == 0 and r["MESSAGE"]["DESERIALIZATIONERROR"]["topic"] == stream
        ]
        return records if len(records) >= expected_rejects else None

    logged = wait_for(deserialization_errors, timeout=30)
    # Exactly one log record per rejected record, all from this query.
    assert len(logged) == truth.rejected_total == expected_rejects
    assert all(r["LOGGER"].startswith(f"processing.{query_id}.") for r in logged)
    # Null group-by keys are logged as record-processing errors (TYPE 1), one each.
    mine_log = [
        r
        for r in _processing_log(kafka_bootstrap)
        if r["LOGGER"].startswith(f"processing.{query_id}.")
    ]
    assert sum(1 for r in mine_log if r["MESSAGE"]["TYPE"] == 1) == truth.null_keys

    # Still running and still counting after the poison.
    producer.produce(stream, value=b'{"customer": "zed", "item": "last", "qty": 41}', key=b"k")
    assert producer.flush(30) == 0
    wait_for(lambda: _table(raw, table).get(("zed", "last")) == 42, timeout=60)
