"""Per-record logic of persistent queries, separate from the exactly-once loop.

A processor turns one deserialized input record into changes of the materialized
table (key bytes -> new row, or None for a delete). The loop in `persistent.py` owns
transactions, state publication and output; adding a query shape = one processor.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from confluent_kafka import Message

from cart_pipeline.engine.catalog.model import DataSource
from cart_pipeline.engine.runtime.planner import AggregatePlan, ProjectionPlan
from cart_pipeline.engine.runtime.processing_log import ProcessingLog
from cart_pipeline.engine.runtime.serde import KeySerde, key_serde, value_serde
from cart_pipeline.engine.runtime.state import MemoryStore, StoredRow, compact
from cart_pipeline.engine.runtime.stream_planner import StreamPlan
from cart_pipeline.engine.types import CoercionError

Change = tuple[bytes, StoredRow | None]


@dataclass(slots=True)
class InputRecord:
    """One deserialized input record (not frozen: built once per record on the hot path)."""

    key: list[object]
    value: list[object] | None  # None: a tombstone
    timestamp: int
    partition: int
    offset: int

    def row(self) -> list[object]:
        """Source row layout: columns (keys first), then ROWTIME, ROWPARTITION, ROWOFFSET."""
        assert self.value is not None
        return [*self.key, *self.value, self.timestamp, self.partition, self.offset]


class RecordDecoder:
    """Kafka message -> InputRecord by the source's key and value serdes.

    A key or value that does not deserialize is logged to the processing log and the
    record skipped (None), as ksqlDB does.
    """

    def __init__(self, query_id: str, source: DataSource, plog: ProcessingLog) -> None:
        self.query_id = query_id
        self.plog = plog
        self.key = key_serde(source.key_format, source.key_columns)
        self.value = value_serde(source.value_format, source.value_columns, source.value_features)

    def decode(self, msg: Message) -> InputRecord | None:
        try:
            key_vals = self.key.deserialize(msg.key())
        except CoercionError as exc:
            topic = msg.topic() or ""
            self.plog.deserialization_error(self.query_id, topic, "key", str(exc), msg.key())
            return None
        try:
            values = self.value.deserialize(msg.value())
        except CoercionError as exc:
            topic = msg.topic() or ""
            self.plog.deserialization_error(self.query_id, topic, "value", str(exc), msg.value())
            return None
        _, ts = msg.timestamp()
        return InputRecord(key_vals, values, ts, msg.partition() or 0, msg.offset() or 0)


class Processor(Protocol):
    def process(self, record: InputRecord, store: MemoryStore) -> list[Change]: ...


class AggregateProcessor:
    """GROUP BY + aggregates over a stream (ksqlDB's stream aggregation)."""

    def __init__(
        self, query_id: str, plan: AggregatePlan, sink_key: KeySerde, plog: ProcessingLog
    ) -> None:
        self.query_id = query_id
        self.plan = plan
        self.sink_key = sink_key
        self.plog = plog
        # Serialized key per group: serializing costs several times a dict lookup, and a
        # table holds few keys for many records. Only for all-STRING keys, where equal
        # tuples always serialize alike (1 == 1.0 == True would not); grows with keys.
        key_types = [c.type.base for c in plan.sink_columns if c.key]
        string_keys = bool(key_types) and all(t == "STRING" for t in key_types)
        self._keys: dict[tuple[object, ...], bytes] | None = {} if string_keys else None

    def process(self, record: InputRecord, store: MemoryStore) -> list[Change]:
        found = self.extract(record)
        if found is None:
            return []
        group_key, args = found
        key = self.key_of(group_key)
        prev = store.get(key)
        calls = self.plan.calls
        states = list(prev.states) if prev else [c.aggregate.initial() for c in calls]
        for j, call in enumerate(calls):
            states[j] = call.aggregate.add(states[j], args[j])
        rowtime = record.timestamp
        if prev is not None and prev.rowtime > rowtime:
            rowtime = prev.rowtime
        if self.plan.simple:
            out = tuple([calls[j].aggregate.result(states[j]) for _, j in self.plan.value_layout])
            return [(key, StoredRow(group_key, out, rowtime, tuple(states)))]
        out, visible = self.plan.output(group_key, states)
        return [(key, StoredRow(group_key, out, rowtime, tuple(states), not visible))]

    def extract(self, record: InputRecord) -> tuple[tuple[object, ...], list[object]] | None:
        """The record's group and aggregate arguments, or None when it adds nothing.

        None for a record without a value, one the WHERE clause filters out, or one whose
        group-by resolves to null (logged to the processing log, as ksqlDB does).
        """
        if record.value is None:
            return None  # a stream record without a value carries nothing to aggregate
        plan = self.plan
        row = record.row()
        if plan.where is not None and plan.where(row) is not True:
            return None
        group = [f(row) for f in plan.group_by]
        if None in group:
            i = next(i for i, value in enumerate(group) if value is None)
            self.plog.record_processing_error(
                self.query_id,
                "Aggregate.GroupBy",
                f"Group-by column with index {i} resolved to null. "
                "The source row will be excluded from the table.",
                row[: len(record.key) + len(record.value)],
            )
            return None
        args = [call.argument(row) if call.argument is not None else 1 for call in plan.calls]
        return tuple(group), args

    @property
    def caches_keys(self) -> bool:
        """Whether `key_of` keeps each group's key (exact size) for the table's life."""
        return self._keys is not None

    def key_of(self, group_key: tuple[object, ...]) -> bytes:
        """The sink (and store) key of a group."""
        keys = self._keys
        key = None if keys is None else keys.get(group_key)
        if key is None:
            key = self.sink_key.serialize(list(group_key)) or b""
            if keys is not None:
                key = compact(key)  # held for the table's life: no slack
                keys[group_key] = key
        return key


class ProjectionProcessor:
    """Filter + projection of a table (CREATE TABLE t AS SELECT ... FROM table)."""

    def __init__(self, plan: ProjectionPlan, sink_key: KeySerde) -> None:
        self.plan = plan
        self.sink_key = sink_key

    def process(self, record: InputRecord, store: MemoryStore) -> list[Change]:
        plan = self.plan
        if record.value is None:
            key = self.sink_key.serialize([record.key[i] for i in plan.key_order]) or b""
            return [(key, None)] if store.get(key) is not None else []
        row = record.row()
        key_values = tuple(row[i] for i in plan.key_order)
        key = self.sink_key.serialize(key_values) or b""
        if plan.where is not None and plan.where(row) is not True:
            # KTable filter semantics: a row leaving the result becomes a delete
            return [(key, None)] if store.get(key) is not None else []
        values = tuple(f(row) for f in plan.values)
        return [(key, StoredRow(key_values, values, record.timestamp))]


StreamOutput = tuple[bytes | None, tuple[object, ...] | None, int]


class StreamProcessor:
    """Stream -> stream projection/filter/re-key (CREATE STREAM AS SELECT): no state."""

    def __init__(self, plan: StreamPlan, sink_key: KeySerde) -> None:
        self.plan = plan
        self.sink_key = sink_key

    def process(self, record: InputRecord, store: MemoryStore) -> list[Change]:
        return []  # stateless: see stream_records

    def stream_records(self, record: InputRecord) -> list[StreamOutput]:
        plan = self.plan
        n_values = len(plan.source.value_columns)
        if record.value is None:
            if plan.where is not None:
                return []  # a null value never passes a filter
            if plan.rekeyed:  # PARTITION BY over a null value: null key
                return [(None, None, record.timestamp)]
            row = [*record.key, *([None] * n_values), record.timestamp, record.partition, 0]
            key = self.sink_key.serialize([f(row) for f in plan.keys])
            return [(key, None, record.timestamp)]
        row = record.row()
        if plan.where is not None and plan.where(row) is not True:
            return []
        key = self.sink_key.serialize([f(row) for f in plan.keys])
        return [(key, tuple(f(row) for f in plan.values), record.timestamp)]
