"""The batch aggregation path (runtime/batch.py) gives exactly the per-record path's results.

Differential tests: the same messages go through the per-record path (what runs with
`ksql.streams.cache.max.bytes.buffering=0`) and the batch path (the default), with commits
at the same offsets; the rows each commit emits (in order), the committed tables and the
processing-log entries must be identical. The first tests drive the two paths in process
on generated tricky input; the last runs both through the engine on a real broker.
"""

from __future__ import annotations

import random
from typing import Any

import orjson
import pytest
from confluent_kafka import KafkaError, Message, Producer

from cart_pipeline.engine.catalog.model import Catalog, Column, DataSource
from cart_pipeline.engine.runtime.batch import BatchAggregator, batch_aggregator
from cart_pipeline.engine.runtime.planner import plan_aggregate
from cart_pipeline.engine.runtime.processors import AggregateProcessor, RecordDecoder
from cart_pipeline.engine.runtime.serde import key_serde
from cart_pipeline.engine.runtime.state import MemoryStore, StoredRow
from cart_pipeline.engine.sql import ast
from cart_pipeline.engine.sql.parser import parse_statements
from cart_pipeline.engine.types import SqlType
from tests.engine.conftest import KsqlClient, wait_for


class RecordingLog:
    """Stands in for ProcessingLog: remembers every entry, in order."""

    def __init__(self) -> None:
        self.entries: list[tuple[object, ...]] = []

    def deserialization_error(
        self, query_id: str, topic: str, target: str, error: str, raw: bytes | None
    ) -> None:
        self.entries.append(("deserialization", query_id, topic, target, error, raw))

    def record_processing_error(self, query_id: str, logger: str, error: str, row: object) -> None:
        self.entries.append(("processing", query_id, logger, error, orjson.dumps(row)))


def _source(columns: str, key_format: str = "JSON") -> DataSource:
    cols = []
    for spec in columns.split(","):
        parts = spec.split()
        cols.append(Column(parts[0].upper(), SqlType.of(parts[1]), key=len(parts) > 2))
    return DataSource("S", "STREAM", tuple(cols), "s", key_format, "JSON", "")


def _pipelines(
    source: DataSource, select: str, sink_key_format: str = "JSON"
) -> tuple[Any, Any, BatchAggregator | None]:
    catalog = Catalog({"S": source})
    (parsed,) = parse_statements(f"CREATE TABLE T AS {select};")
    stmt = parsed.statement
    assert isinstance(stmt, ast.CreateAsSelect)
    plan, key_names = plan_aggregate(catalog, stmt.query, "T")
    sink_keys = [c for c in plan.sink_columns if c.key]
    assert [c.name for c in sink_keys] == key_names

    def build() -> tuple[AggregateProcessor, RecordDecoder, RecordingLog]:
        log = RecordingLog()
        sink_key = key_serde(sink_key_format, sink_keys)
        proc = AggregateProcessor("Q", plan, sink_key, log)  # type: ignore[arg-type]
        return proc, RecordDecoder("Q", source, log), log  # type: ignore[arg-type]

    per_record = build()
    batched = build()
    batch = batch_aggregator(plan, batched[0], batched[1], batched[0].sink_key, sink_key_format)
    return per_record, batched, batch


Emitted = list[tuple[bytes, StoredRow | None]]


def _run_per_record(pipeline: Any, batches: list[list[Message]]) -> tuple[Emitted, Any]:
    proc, decoder, log = pipeline
    store, emitted = MemoryStore(), []
    for msgs in batches:
        for msg in msgs:
            if msg.error() is not None:
                continue
            record = decoder.decode(msg)
            if record is None:
                continue
            for key, row in proc.process(record, store):
                store.put(key, row)
        emitted += [(k, store.get(k)) for k in store.dirty_keys()]  # a commit
        store.commit()
    return emitted, (sorted(store.committed_items()), log.entries)


def _run_batched(pipeline: Any, batch: BatchAggregator, batches: list[list[Message]]) -> Any:
    _, _, log = pipeline
    store, emitted = MemoryStore(), []
    for msgs in batches:
        batch.process(msgs, store)
        batch.flush(store)
        emitted += [(k, store.get(k)) for k in store.dirty_keys()]
        store.commit()
    return emitted, (sorted(store.committed_items()), log.entries)


def _msg(value: bytes | None, offset: int, ts: int, key: bytes | None = None) -> Message:
    return Message(
        topic="s", partition=offset % 3, offset=offset, key=key, value=value, timestamp=(1, ts)
    )


CUSTOMERS = ["alice", "bob", "Bob", "ça", "", "a,b"]
ITEMS = ["hat", "shoe", "HAT"]
QTYS: list[object] = [
    1, 2, -3, 0, 7, 2**31 - 1, -(2**31), 2**31 + 5, -(2**31) - 9, 2**40, 2**63 + 1,
    "3", "-4", " 5", "x", 3.0, 2.5, -1.5, 1e10, True, None, [1], {"a": 1}, "2147483648",
]  # fmt: skip
NAMES = [
    ("customer", "item", "qty"),
    ("CUSTOMER", "Item", "QTY"),
    ("qty", "item", "customer"),
    ("Customer", "customer", "item", "qty"),  # exact name wins over case-insensitive
    ("cUsToMeR", "CUSTOMER", "item", "qty"),
    ("customer", "item"),  # qty missing: NULL
    ("customer", "qty"),  # item missing: NULL group-by, logged
    ("customer", "item", "qty", "extra"),
]
MALFORMED = [b"{", b"", b"null", b"[1, 2]", b"5", b'"text"', b"not json", b'{"customer": 1e400}']


def _value(rng: random.Random) -> bytes | None:
    roll = rng.random()
    if roll < 0.03:
        return rng.choice(MALFORMED)
    if roll < 0.04:
        return None  # a tombstone
    names = rng.choice(NAMES) if roll < 0.5 else NAMES[0]
    qty = rng.choice(QTYS) if roll < 0.6 else rng.randint(-5, 20)
    d: dict[str, object] = {}
    for n in names:
        if n.lower() == "customer":
            d[n] = rng.choice(CUSTOMERS) if rng.random() > 0.03 else rng.choice([None, 5, 2.0])
        elif n.lower() == "item":
            d[n] = rng.choice(ITEMS) if rng.random() > 0.03 else None
        elif n.lower() == "qty":
            d[n] = qty
        else:
            d[n] = rng.choice(["x", 1, None])
    return orjson.dumps(d)


def _messages(seed: int, n: int, value: Any = _value) -> list[list[Message]]:
    rng = random.Random(seed)
    msgs = [_msg(value(rng), i, rng.randint(-1, 1000)) for i in range(n)]
    msgs.insert(n // 2, Message(topic="s", error=KafkaError(KafkaError._TRANSPORT)))
    batches, i = [], 0
    while i < len(msgs):
        size = rng.choice([1, 7, 50, 400])
        batches.append(msgs[i : i + size])
        i += size
    return batches


def _assert_same(select: str, source: DataSource, batches: list[list[Message]], **kw: Any) -> None:
    per_record, batched, batch = _pipelines(source, select, **kw)
    assert batch is not None, "the plan should take the batch path"
    expected_emitted, expected = _run_per_record(per_record, batches)
    slow_calls: list[Message] = []
    slow = batch._slow

    def counted_slow(msg: Message) -> None:
        slow_calls.append(msg)
        slow(msg)

    batch._slow = counted_slow  # type: ignore[method-assign]
    got_emitted, got = _run_batched(batched, batch, batches)
    # both paths taken: the per-record fallback for the odd records only
    assert 0 < len(slow_calls) < sum(map(len, batches))
    assert got[0] == expected[0]  # committed table
    assert got[1] == expected[1]  # processing log, in order
    assert got_emitted == expected_emitted  # each commit's rows, in order
    assert expected[0], "the input should produce rows"


TUTORIAL = "SELECT customer, item, SUM(qty) AS total_qty FROM S GROUP BY customer, item"


@pytest.mark.parametrize("seed", range(6))
def test_tutorial_shape_matches_per_record(seed: int) -> None:
    source = _source("customer VARCHAR, item VARCHAR, qty INT")
    _assert_same(TUTORIAL + " EMIT CHANGES", source, _messages(seed, 3000))


@pytest.mark.parametrize(
    ("columns", "select"),
    [
        (
            "customer VARCHAR, item VARCHAR, qty BIGINT",
            "SELECT item, customer, SUM(qty), COUNT(*) AS n, COUNT(qty) AS c FROM S "
            "GROUP BY customer, item",
        ),
        (
            "customer VARCHAR, item VARCHAR, qty DOUBLE",
            "SELECT customer, SUM(qty) AS total, COUNT(item) AS n FROM S GROUP BY customer",
        ),
        (
            "customer VARCHAR, item VARCHAR, qty INT",
            "SELECT qty, COUNT(*) AS n, SUM(qty) AS s FROM S GROUP BY qty",  # INT group-by
        ),
        (
            "customer VARCHAR, item VARCHAR, qty INT",
            "SELECT item, COUNT(1) AS n FROM S GROUP BY item",
        ),
    ],
)
@pytest.mark.parametrize("seed", range(3))
def test_other_shapes_match_per_record(columns: str, select: str, seed: int) -> None:
    _assert_same(select, _source(columns), _messages(seed, 2000))


def test_kafka_sink_key_matches_per_record() -> None:
    source = _source("customer VARCHAR, item VARCHAR, qty INT")
    select = "SELECT item, SUM(qty) AS s FROM S GROUP BY item"
    _assert_same(select, source, _messages(11, 2000), sink_key_format="KAFKA")


def test_keyed_source_with_bad_keys_matches_per_record() -> None:
    source = _source("id INT KEY, customer VARCHAR, item VARCHAR, qty INT")
    rng = random.Random(5)
    keys = [b"1", b"2", b"x", b"{", None, b"2147483648"]
    msgs = [_msg(_value(rng), i, rng.randint(0, 100), key=rng.choice(keys)) for i in range(1500)]
    batches = [msgs[i : i + 100] for i in range(0, len(msgs), 100)]
    _assert_same(TUTORIAL, source, batches)


def test_int_overflow_wraps_as_per_record() -> None:
    source = _source("customer VARCHAR, item VARCHAR, qty INT")
    big = [2**31 - 1, 2**31 - 1, 1, 2**31 + 7, -(2**31), -(2**33), 2**62, 5]
    values = [orjson.dumps({"customer": "c", "item": "i", "qty": q}) for q in big]
    batches = [[_msg(v, i, i) for i, v in enumerate(values)]]
    per_record, batched, batch = _pipelines(source, TUTORIAL)
    assert batch is not None
    expected = _run_per_record(per_record, batches)
    assert _run_batched(batched, batch, batches) == expected
    ((_, row),) = expected[1][0]
    assert row.values == (((sum(big) + 2**31) % 2**32) - 2**31,)


def test_shapes_the_batch_path_leaves_to_the_per_record_path() -> None:
    source = _source("k INT KEY, customer VARCHAR, item VARCHAR, qty INT, price DOUBLE")
    for select in [
        "SELECT customer, SUM(qty) AS s FROM S WHERE qty > 1 GROUP BY customer",
        "SELECT UCASE(customer) AS c, SUM(qty) AS s FROM S GROUP BY UCASE(customer)",
        "SELECT customer, SUM(qty * 2) AS s FROM S GROUP BY customer",  # argument expression
        "SELECT price, COUNT(*) AS n FROM S GROUP BY price",  # DOUBLE group-by
        "SELECT k, COUNT(*) AS n FROM S GROUP BY k",  # key column
        "SELECT customer, COUNT(NULL) AS n FROM S GROUP BY customer",
    ]:
        assert _pipelines(source, select)[2] is None, select
    assert _pipelines(source, TUTORIAL, sink_key_format="DELIMITED")[2] is None


# --- through the engine, on a real broker -------------------------------------------------


def test_engine_cached_and_uncached_tables_agree(
    client: KsqlClient, unique_name: str, kafka_bootstrap: str
) -> None:
    """One tricky input, two tables: record cache off (per-record path) and on (batch)."""
    stream = unique_name
    client.ksql(
        f"CREATE STREAM {stream} (customer VARCHAR, item VARCHAR, qty INT) "
        f"WITH (kafka_topic='{stream}', value_format='json', partitions=3);"
    )
    rng = random.Random(42)
    producer = Producer({"bootstrap.servers": kafka_bootstrap, "partitioner": "murmur2_random"})
    n = 3000
    for i in range(n):
        value = _value(rng)
        producer.produce(stream, value=value, key=str(i % 17).encode())
        if i % 500 == 0:
            producer.poll(0)
    assert producer.flush(30) == 0
    tables = {"per_record": f"{stream}_per_record", "batch": f"{stream}_batch"}
    for mode, table in tables.items():
        props = {"auto.offset.reset": "earliest"}
        if mode == "per_record":
            props["ksql.streams.cache.max.bytes.buffering"] = "0"
        client.ksql(
            f"CREATE TABLE {table} WITH (KEY_FORMAT='JSON') AS SELECT customer, item, "
            "SUM(qty) AS total, "
            f"COUNT(*) AS n, COUNT(qty) AS c FROM {stream} GROUP BY customer, item;",
            props,
        )

    def rows(table: str) -> list[list[Any]]:
        return sorted(client.pull(f"SELECT * FROM {table};")[1], key=orjson.dumps)

    def counted(table: str) -> int:
        return sum(r[3] for r in rows(table))

    # both caught up: every record that counts is counted (COUNT(*) totals stop moving)
    expected = _expected_count(_messages_values(42, n))
    for table in tables.values():
        wait_for(lambda t=table: counted(t) == expected, timeout=60)  # type: ignore[misc]
    assert rows(tables["batch"]) == rows(tables["per_record"])
    assert len(rows(tables["batch"])) > 10


def _messages_values(seed: int, n: int) -> list[bytes | None]:
    rng = random.Random(seed)
    return [_value(rng) for _ in range(n)]


def _expected_count(values: list[bytes | None]) -> int:
    """COUNT(*) over all groups, by the per-record code: the records that are aggregated."""
    source = _source("customer VARCHAR, item VARCHAR, qty INT")
    select = "SELECT customer, item, COUNT(*) AS n FROM S GROUP BY customer, item"
    per_record, _, _ = _pipelines(source, select)
    _, (items, _) = _run_per_record(per_record, [[_msg(v, i, 0) for i, v in enumerate(values)]])
    return sum(row.values[0] for _, row in items)
