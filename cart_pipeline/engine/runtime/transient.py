"""Transient queries: pull queries (table state or stream scan) and push queries.

A query is prepared (planned and validated) on the request thread, then its rows are
produced by a blocking iterator the HTTP layer drains from a worker thread. Records that
cannot be deserialized are skipped and reported to `on_error` (the processing log), as
ksqlDB does for transient queries too.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, KafkaError, TopicPartition

from cart_pipeline.engine import kafka
from cart_pipeline.engine.catalog.model import DataSource
from cart_pipeline.engine.errors import KsqlStatementError
from cart_pipeline.engine.runtime.partitioning import scan_order
from cart_pipeline.engine.runtime.planner import SelectPlan
from cart_pipeline.engine.runtime.serde import key_serde, value_serde
from cart_pipeline.engine.runtime.state import StateStore
from cart_pipeline.engine.types import CoercionError

POLL_TIMEOUT = 0.2
#: (topic, "key" | "value", error, raw bytes): where a record that cannot be read is reported.
DeserializationLog = Callable[[str, str, str, bytes | None], None]


@dataclass
class TransientQuery:
    """A prepared SELECT: header data plus the row iterator that executes it."""

    query_id: str
    plan: SelectPlan
    is_pull: bool
    rows: Iterator[list[object]]
    closed: threading.Event = field(default_factory=threading.Event)
    limit_reached: bool = False
    statement_text: str = ""

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.plan.columns]

    @property
    def column_types(self) -> list[str]:
        return [str(c.type) for c in self.plan.columns]

    def schema(self) -> str:
        return self.plan.schema_text(mark_keys=self.is_pull and self.plan.source.kind == "TABLE")

    def close(self) -> None:
        self.closed.set()


def pull_query_id() -> str:
    return str(uuid.uuid4())


def push_query_id(source: DataSource) -> str:
    return f"transient_{source.name}_{random.getrandbits(63)}"


def table_rows(
    plan: SelectPlan, store: StateStore, key_bytes_order: bool = True
) -> Iterator[list[object]]:
    """Pull query over a materialized table's committed state, in ksqlDB's scan order."""
    parts = plan.source.partitions
    items = sorted(store.committed_items(), key=lambda kv: scan_order(kv[0], parts))
    emitted = 0
    for _, stored in items:
        if plan.limit is not None and emitted >= plan.limit:
            return
        row = [*stored.key, *stored.values, stored.rowtime, None, None]
        out = plan.project(row)
        if out is not None:
            emitted += 1
            yield out


class Tombstone(list[object]):
    """A table row deleted upstream: key columns set, value columns NULL."""


class _Decoder:
    def __init__(self, source: DataSource, on_error: DeserializationLog | None = None) -> None:
        self.table = source.kind == "TABLE"
        self.n_values = len(source.value_columns)
        self.key = key_serde(source.key_format, source.key_columns)
        self.value = value_serde(source.value_format, source.value_columns, source.value_features)
        self.on_error = on_error

    def row(self, msg: object) -> list[object] | None:
        """The source row of a record; a `Tombstone` for a table delete; None to skip."""
        from confluent_kafka import Message

        assert isinstance(msg, Message)
        if self.table and msg.key() is None:
            return None  # a table row needs a key: ksqlDB ignores the record
        try:
            key = self.key.deserialize(msg.key())
        except CoercionError as exc:
            self._skip(msg.topic() or "", "key", str(exc), msg.key())
            return None
        try:
            value = self.value.deserialize(msg.value())
        except CoercionError as exc:
            self._skip(msg.topic() or "", "value", str(exc), msg.value())
            return None
        _, ts = msg.timestamp()
        if value is None:
            if not self.table:
                return None
            return Tombstone([*key, *([None] * self.n_values), ts, msg.partition(), msg.offset()])
        return [*key, *value, ts, msg.partition(), msg.offset()]

    def _skip(self, topic: str, target: str, error: str, raw: bytes | None) -> None:
        if self.on_error is not None:
            self.on_error(topic, target, error, raw)


def _project(plan: SelectPlan, row: list[object] | None) -> list[object] | None:
    if row is None:
        return None
    if isinstance(row, Tombstone):
        # deletes pass any filter; only key columns survive into the output
        return Tombstone([c.fn(row) if c.key else None for c in plan.columns])
    return plan.project(row)


def stream_scan(
    bootstrap: str,
    plan: SelectPlan,
    closed: threading.Event,
    on_error: DeserializationLog | None = None,
) -> Iterator[list[object]]:
    """Pull query over a stream: every committed record up to the end offsets at start."""
    source = plan.source
    decoder = _Decoder(source, on_error)
    c = kafka.consumer(bootstrap)
    try:
        partitions = kafka.topic_partitions(kafka.admin(bootstrap), source.topic) or 0
        ends = kafka.end_offsets(c, source.topic, partitions)
        pending = {p for p, (lo, hi) in ends.items() if hi > lo}
        if not pending:
            return
        c.assign([TopicPartition(source.topic, p, OFFSET_BEGINNING) for p in pending])
        emitted = 0
        deadline = time.monotonic() + 60
        while pending and not closed.is_set() and time.monotonic() < deadline:
            for msg in c.consume(num_messages=500, timeout=POLL_TIMEOUT):
                err = msg.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        pending.discard(msg.partition())
                    continue
                part, offset = msg.partition() or 0, msg.offset() or 0
                if offset >= ends[part][1]:
                    pending.discard(part)
                    continue
                if offset + 1 >= ends[part][1]:
                    pending.discard(part)
                out = _project(plan, decoder.row(msg))
                if out is None:
                    continue
                if plan.limit is not None and emitted >= plan.limit:
                    return
                emitted += 1
                yield out
    finally:
        c.close()


def push_rows(
    bootstrap: str,
    plan: SelectPlan,
    offset_reset: str,
    query: TransientQuery,
    on_error: DeserializationLog | None = None,
) -> Iterator[list[object]]:
    """Push query: rows as they arrive, until LIMIT or close."""
    source = plan.source
    decoder = _Decoder(source, on_error)
    if plan.limit == 0:
        query.limit_reached = True
        return
    c = kafka.consumer(bootstrap, None, **{"enable.partition.eof": False})
    try:
        partitions = kafka.topic_partitions(kafka.admin(bootstrap), source.topic) or 0
        start = OFFSET_BEGINNING if offset_reset == "earliest" else OFFSET_END
        c.assign([TopicPartition(source.topic, p, start) for p in range(partitions)])
        emitted = 0
        while not query.closed.is_set():
            for msg in c.consume(num_messages=500, timeout=POLL_TIMEOUT):
                if msg.error() is not None:
                    continue
                out = _project(plan, decoder.row(msg))
                if out is None:
                    continue
                emitted += 1
                yield out
                if plan.limit is not None and emitted >= plan.limit:
                    query.limit_reached = True
                    return
            yield []  # heartbeat: lets the HTTP layer notice a closed client
    finally:
        c.close()


def refuse_unmaterialized(source: DataSource) -> KsqlStatementError:
    return KsqlStatementError(
        f"The `{source.name}` table isn't queryable. To derive a queryable table, you can do "
        f"'CREATE TABLE QUERYABLE_{source.name} AS SELECT * FROM {source.name}'. See "
        "https://cnfl.io/queries for more info.\nAdd EMIT CHANGES if you intended to issue a "
        "push query."
    )
