"""GROUP BY over a TABLE source (ksqlDB's table aggregation: add, and undo on update).

A table row's update takes its previous contribution out of its previous group (each
aggregate's `undo`) and adds the new one, as Kafka Streams' KGroupedTable.aggregate does:
one output when the group is unchanged, else the old group's row then the new group's.
A delete only takes the contribution out; groups stay (a count goes back to 0).

Each source key's current contribution (group values and aggregate arguments) is kept in
the same store, so the changelog restores it with the groups: as a hidden row (never in
the table's view nor its sink) under a key no sink key can equal (see `contribution_key`).
"""

from __future__ import annotations

from cart_pipeline.engine.runtime.planner import AggregatePlan
from cart_pipeline.engine.runtime.processing_log import ProcessingLog
from cart_pipeline.engine.runtime.processors import AggregateProcessor, Change, InputRecord
from cart_pipeline.engine.runtime.serde import KeySerde, key_serde
from cart_pipeline.engine.runtime.state import MemoryStore, StoredRow

Contribution = tuple[tuple[object, ...], list[object]]  # (group values, aggregate arguments)


def contribution_key(source_key: bytes) -> bytes:
    """A store key for a source key's contribution, distinct from any sink key.

    Sink keys are valid UTF-8 (JSON, DELIMITED, KAFKA STRING) or 4/8 bytes (KAFKA INTEGER,
    BIGINT, DOUBLE); these start with 0xFF (never in UTF-8) and are never 4 or 8 bytes
    long (two prefixes keep the mapping one to one).
    """
    key = b"\xff\xfe" + source_key
    return key if len(key) not in (4, 8) else b"\xff\xfd\xfd" + source_key


class TableAggregateProcessor(AggregateProcessor):
    """AggregateProcessor for a TABLE source: updates and deletes undo earlier rows."""

    def __init__(
        self, query_id: str, plan: AggregatePlan, sink_key: KeySerde, plog: ProcessingLog
    ) -> None:
        super().__init__(query_id, plan, sink_key, plog)
        self.source_key = key_serde("JSON", plan.source.key_columns)

    def process(self, record: InputRecord, store: MemoryStore) -> list[Change]:
        ckey = contribution_key(self.source_key.serialize(record.key) or b"")
        prev = store.get(ckey)
        old: Contribution | None = (prev.key, list(prev.values)) if prev and prev.key else None
        new = self.extract(record)
        if old is None and new is None:
            return []
        ts = record.timestamp
        changes: list[Change] = []
        if old is not None and new is not None and old[0] == new[0]:
            changes.append(self._apply(store, old[0], old[1], new[1], ts))
        else:
            if old is not None:
                changes.append(self._apply(store, old[0], old[1], None, ts))
            if new is not None:
                changes.append(self._apply(store, new[0], None, new[1], ts))
        kept = StoredRow(new[0], tuple(new[1]), ts, (), True) if new else StoredRow((), (), ts)
        changes.append((ckey, kept._replace(hidden=True)))
        return changes

    def _apply(
        self,
        store: MemoryStore,
        group_key: tuple[object, ...],
        removed: list[object] | None,
        added: list[object] | None,
        ts: int,
    ) -> Change:
        key = self.key_of(group_key)
        row = store.get(key)
        calls = self.plan.calls
        states = list(row.states) if row else [c.aggregate.initial() for c in calls]
        for j, call in enumerate(calls):
            if removed is not None:
                undo = call.aggregate.undo
                assert undo is not None  # the planner only accepts undoable aggregates
                states[j] = undo(states[j], removed[j])
            if added is not None:
                states[j] = call.aggregate.add(states[j], added[j])
        rowtime = max(ts, row.rowtime) if row is not None else ts
        values, visible = self.plan.output(group_key, states)
        return key, StoredRow(group_key, values, rowtime, tuple(states), not visible)
