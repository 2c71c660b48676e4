"""Injection-shaped values go in and come back verbatim, through INSERT VALUES, the loader's
producer path and pull-query WHERE clauses; nothing in a value can split a statement."""

from __future__ import annotations

import functools

import numpy as np

from cart_pipeline.kafka_io import KafkaSettings
from cart_pipeline.kafka_io.transactional import TransactionalProducer
from cart_pipeline.ksql import KsqlClient, quote_identifier, quote_literal
from cart_pipeline.loader.encoding import EventEncoder
from tests.engine.conftest import wait_for

VALUES = [
    "O'Brien",
    "''",
    "it''s",
    "`backtick` and ``double``",
    'double "quotes"',
    "semi;colon;",
    "line\nbreak\r\nand\ttab",
    "-- a line comment",
    "/* block */ comment",
    "${var}",
    "${ksql.service.id}",
    "back\\slash\\",
    "日本語のカート",
    "Ελληνικά κείμενο",
    "עברית",
    "emoji 🛒🧦",
]


def _victim_drop(name: str) -> str:
    return f"'; DROP STREAM {name}; --"


def test_injection_shaped_values_round_trip(
    ksql: KsqlClient, unique_name: str, kafka_settings: KafkaSettings
) -> None:
    stream, table, victim = unique_name, f"{unique_name}_cart", f"{unique_name}_victim"
    ksql.execute(
        f"CREATE STREAM {victim} (a INT) "
        f"WITH (kafka_topic='{victim}', value_format='json', partitions=1);"
    )
    ksql.execute(
        f"CREATE STREAM {stream} (customer VARCHAR, item VARCHAR, qty INT) "
        f"WITH (kafka_topic='{stream}', value_format='json', partitions=1);"
        f"CREATE TABLE {table} WITH (KEY_FORMAT='JSON') AS SELECT customer, item, "
        f"SUM(qty) AS total_qty FROM {stream} GROUP BY customer, item EMIT CHANGES;",
        properties={"auto.offset.reset": "earliest"},
    )
    values = [*VALUES, _victim_drop(victim.upper()), _victim_drop(victim)]
    items = [f"item {v}" for v in values]

    # 1. INSERT VALUES through the client (every literal quoted by quote_literal): qty 1 each.
    for customer, item in zip(values, items, strict=True):
        assert (
            ksql.insert_values(stream.upper(), {"CUSTOMER": customer, "ITEM": item, "QTY": 1}) == []
        )

    # 2. The loader's path: pre-encoded JSON values in one transaction: qty 2 each.
    encoder = EventEncoder(values, items, max_quantity=2)
    n = len(values)
    index = np.arange(n, dtype=np.int64)
    keys, payloads = encoder.encode(index, index, index, np.full(n, 2, dtype=np.int64))
    with TransactionalProducer(
        kafka_settings, stream, transactional_id=f"{unique_name}-load"
    ) as txn:
        txn.produce(keys, payloads)
        ranges = txn.commit()
    assert sum(r.count for r in ranges.values()) == n

    # 3. Pull queries with WHERE built by quote_literal find each key, verbatim.
    def row(customer: str, item: str) -> tuple[object, ...] | None:
        result = ksql.query(
            f"SELECT * FROM {quote_identifier(table.upper())} "
            f"WHERE CUSTOMER = {quote_literal(customer)} AND ITEM = {quote_literal(item)};"
        )
        return result.rows[0] if len(result) == 1 and result.rows[0][2] == 3 else None

    for customer, item in zip(values, items, strict=True):
        found = wait_for(functools.partial(row, customer, item), timeout=60)
        assert found == (customer, item, 3)

    # The whole table holds exactly these keys: no value was split, truncated or re-encoded.
    everything = {(r[0], r[1]): r[2] for r in ksql.query(f"SELECT * FROM {table};")}
    assert everything == {(c, i): 3 for c, i in zip(values, items, strict=True)}

    # The stream itself returns the raw events verbatim too (2 per value: insert + load).
    events = ksql.query(
        f"SELECT CUSTOMER, ITEM, QTY FROM {stream} WHERE CUSTOMER = {quote_literal(values[-1])};"
    )
    assert sorted(events.rows) == [(values[-1], items[-1], 1), (values[-1], items[-1], 2)]

    # No statement splitting: the victim stream is intact.
    assert victim.upper() in {s.name for s in ksql.list_streams()}
    assert ksql.describe(victim.upper()).name == victim.upper()
