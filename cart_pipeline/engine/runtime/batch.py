"""Batch path of a CTAS aggregation: one call per consume() batch, not ~25 per record.

For the common shape (JSON values, GROUP BY plain columns, SUM/COUNT over plain columns
or COUNT(*), no WHERE) and only with ksqlDB's record cache on (the default: output is one
row per changed key per commit, so per-record table states are never observable),
`BatchAggregator.process` folds a whole batch of messages into per-group accumulators:

* a loop specialised to the plan (`_compile`: generated Python source, so group columns
  and aggregates are locals and constants, not evaluator calls) parses each value with
  orjson, reads the columns by a field-name mapping resolved once per JSON key layout
  (`serde.resolve_fields`: exact, then case-insensitive), and takes the record only when
  every present column's value already has its column's Python type, i.e. when the
  per-record path's coercion would return it unchanged (integers: the group-by ones in
  range; SUM's argument needs no range check, as wrapping before or after the 32/64-bit
  add gives the same sum);
* any other record (malformed JSON, not an object, a missing or null column, a value
  needing coercion such as "3" or 3.0, a key that does not deserialize...) goes, in its
  place in the batch, through the per-record path's own code: `RecordDecoder.decode`
  (deserialization errors to the processing log), `AggregateProcessor.extract` (WHERE,
  null group-by to the processing log, argument evaluators) and each aggregate's `add`,
  into the same accumulators. Records are applied in offset order either way, so even a
  DOUBLE sum adds in the same order.

Accumulators `[rowtime, state..., key bytes]` are keyed by the group tuple, created from
the store's row on a group's first record and kept (one small list per group: no key
serialization or store lookup per group per commit); `flush` writes those changed since
the last flush to the store as StoredRows, in first-change order as the per-record path
did, before the commit emits them. `reset` (a restart) drops them all.
Group tuples and sink keys correspond one to one: only STRING/INTEGER/BIGINT/BOOLEAN
group columns (values of one Python type per column; no 0.0 == -0.0) and JSON or KAFKA
keys qualify.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence

import orjson
from confluent_kafka import Message

from cart_pipeline.engine.runtime.aggregates import _wrapper
from cart_pipeline.engine.runtime.planner import AggregatePlan
from cart_pipeline.engine.runtime.processors import AggregateProcessor, RecordDecoder
from cart_pipeline.engine.runtime.serde import JsonValueSerde, KeySerde, resolve_fields
from cart_pipeline.engine.runtime.state import MemoryStore, StoredRow, compact
from cart_pipeline.engine.types import CoercionError

Entry = list[object]  # [rowtime, state 0, ..., state m-1, key bytes]
Getter = Callable[[dict[str, object]], object]
#: per JSON key layout: getter of the needed columns (a tuple, or the value if only one),
#: getter of the other present columns (or None) and the Python types those must have
Reader = tuple[Getter, Getter | None, tuple[type, ...]] | None

#: Python type of a column's value that the JSON coercion returns unchanged
_PY_TYPE: dict[str, type] = {
    "STRING": str,
    "INTEGER": int,
    "BIGINT": int,
    "DOUBLE": float,
    "BOOLEAN": bool,
}
_INT_RANGE = {"INTEGER": (-(1 << 31), (1 << 31) - 1), "BIGINT": (-(1 << 63), (1 << 63) - 1)}
_GROUP_TYPES = frozenset({"STRING", "INTEGER", "BIGINT", "BOOLEAN"})
_KEY_FORMATS = frozenset({"JSON", "KAFKA"})
_NO_ROWTIME = float("-inf")  # below any record timestamp: the first record's wins
MAX_LAYOUTS = 256


def _aggregate_kind(name: str, result_base: str, column: int | None) -> str | None:
    """How the generated loop updates one aggregate's state, or None: not supported."""
    if name == "COUNT":
        return "count"  # COUNT(*), or COUNT(col) over a value the loop knows is not null
    if name == "SUM" and column is not None and result_base in ("INTEGER", "BIGINT", "DOUBLE"):
        return "sum_" + result_base.lower()
    return None


class BatchAggregator:
    """Folds consume() batches into per-group accumulators (see the module docstring)."""

    def __init__(
        self,
        plan: AggregatePlan,
        processor: AggregateProcessor,
        decoder: RecordDecoder,
        sink_key: KeySerde,
        value_positions: Sequence[int],
        kinds: Sequence[tuple[str, bool]],
    ) -> None:
        self.plan = plan
        self.processor = processor
        self.decoder = decoder
        self.sink_key = sink_key
        self.columns = plan.source.value_columns
        calls = plan.calls
        self._adds = [c.aggregate.add for c in calls]
        self._initial = [c.aggregate.initial for c in calls]
        self._results = [c.aggregate.result for c in calls]
        self._out = [j for _, j in plan.value_layout]
        self._work: dict[tuple[object, ...], Entry] = {}  # groups changed since the flush
        self._entries: dict[tuple[object, ...], Entry] = {}  # every group, as in the store
        self._layouts: dict[tuple[str, ...], Reader] = {}
        self._store = MemoryStore()
        self._uncached_keys = not processor.caches_keys
        n_group = len(plan.group_by)
        self._needed = list(value_positions)  # value index of group columns, then arguments
        types = [self.columns[p].type.base for p in self._needed]
        self._run = _compile(n_group, types, kinds, bool(plan.source.key_columns))

    def reset(self) -> None:
        """Forget every accumulator: the loop restarts from the last commit, with the store
        restored from the changelog."""
        self._work.clear()
        self._entries.clear()

    def process(self, msgs: list[Message], store: MemoryStore) -> int:
        """Fold a batch into the accumulators; returns the number of records (not errors)."""
        self._store = store
        return self._run(  # type: ignore[no-any-return]
            msgs,
            self._work,
            self._open,
            self._slow,
            self._layouts,
            self._new_layout,
            self.decoder.key.deserialize,
        )

    def flush(self, store: MemoryStore) -> None:
        """Write the accumulators to the store, in the order their groups were first seen."""
        put, results, out = store.put, self._results, self._out
        for group_key, e in self._work.items():
            states = tuple(e[1:-1])
            values = tuple([results[j](states[j]) for j in out])
            put(e[-1], StoredRow(group_key, values, e[0], states))  # type: ignore[arg-type]
        self._work.clear()

    # --- called from the generated loop ---------------------------------------------------

    def _open(self, group_key: tuple[object, ...]) -> Entry:
        """A group's accumulator, on its first change since the last flush."""
        kept = self._entries.get(group_key)
        if kept is not None:  # from an earlier interval: its state is the store's
            self._work[group_key] = kept
            return kept
        key = self.processor.key_of(group_key)  # cached per group for STRING keys
        if self._uncached_keys:
            key = compact(key)  # kept in the store's dirty map until the commit: no slack
        prev = self._store.get(key)
        if prev is None:
            e: Entry = [_NO_ROWTIME, *[f() for f in self._initial], key]
        else:
            e = [prev.rowtime, *prev.states, key]
        self._work[group_key] = self._entries[group_key] = e
        return e

    def _slow(self, msg: Message) -> None:
        """One record by the per-record path's code, into the same accumulators."""
        record = self.decoder.decode(msg)
        if record is None:
            return
        found = self.processor.extract(record)
        if found is None:
            return
        group_key, args = found
        e = self._work.get(group_key)
        if e is None:
            e = self._open(group_key)
        if record.timestamp > e[0]:  # type: ignore[operator]
            e[0] = record.timestamp
        for j, add in enumerate(self._adds):
            e[j + 1] = add(e[j + 1], args[j])

    def _new_layout(self, layout: tuple[str, ...]) -> Reader:
        """The reader of objects with these keys: the needed columns first, then every
        other present column (read only to check its type: a value that would not coerce
        makes the record a poison record); None when a needed column is absent."""
        names = resolve_fields(self.columns, layout)
        if len(self._layouts) >= MAX_LAYOUTS:
            self._layouts.clear()  # bounded: a producer with ever-changing fields
        reader: Reader = None
        needed = [names[p] for p in self._needed]
        if all(n is not None for n in needed):
            others = [
                (n, _PY_TYPE[self.columns[p].type.base])
                for p, n in enumerate(names)
                if n is not None and p not in self._needed
            ]
            check: Getter | None = None
            if len(others) == 1:
                only = others[0][0]
                check = lambda d: (d[only],)  # noqa: E731
            elif others:
                check = operator.itemgetter(*[n for n, _ in others])
            reader = (operator.itemgetter(*needed), check, tuple(t for _, t in others))
        self._layouts[layout] = reader
        return reader


def batch_aggregator(
    plan: AggregatePlan,
    processor: AggregateProcessor,
    decoder: RecordDecoder,
    sink_key: KeySerde,
    sink_key_format: str,
) -> BatchAggregator | None:
    """A batch aggregator for `plan`, or None when its shape needs the per-record path."""
    source = plan.source
    n_keys = len(source.key_columns)
    n_values = len(source.value_columns)
    if (
        type(decoder.value) is not JsonValueSerde  # not a subclass: other JSON layouts
        or not plan.simple  # HAVING, values over aggregates, a TABLE source
        or plan.where is not None
        or sink_key_format.upper() not in _KEY_FORMATS
        or not plan.group_by_columns
        or len(plan.group_by_columns) != len(plan.group_by)
    ):
        return None
    positions: list[int] = []
    for index in plan.group_by_columns:
        if index is None or not n_keys <= index < n_keys + n_values:
            return None  # an expression, a key or a pseudo column
        if source.value_columns[index - n_keys].type.base not in _GROUP_TYPES:
            return None
        positions.append(index - n_keys)
    kinds: list[tuple[str, bool]] = []
    for call in plan.calls:
        kind = _aggregate_kind(call.aggregate.name, call.aggregate.result_type.base, call.column)
        if kind is None or (call.argument is not None and call.column is None):
            return None
        if call.column is not None:
            if not n_keys <= call.column < n_keys + n_values:
                return None
            positions.append(call.column - n_keys)
        kinds.append((kind, call.column is not None))
    if any(c.type.base not in _PY_TYPE for c in source.value_columns):
        return None
    return BatchAggregator(plan, processor, decoder, sink_key, positions, kinds)


def _compile(
    n_group: int,
    types: Sequence[str],
    kinds: Sequence[tuple[str, bool]],
    keyed_source: bool,
) -> Callable[..., int]:
    """The batch loop for one plan shape, as Python source compiled once per query.

    `types` are the column types of the needed values v0, v1...: the group columns, then
    one per aggregate with an argument.
    """
    lines = [
        "def run(msgs, work, open_entry, slow, layouts, new_layout, key_deserialize):",
        "    n = 0",
        "    for msg in msgs:",
        "        if msg.error() is not None:",
        "            continue",
        "        n += 1",
    ]
    if keyed_source:  # a key that does not deserialize makes the record a poison record
        lines += [
            "        try:",
            "            key_deserialize(msg.key())",
            "        except CoercionError:",
            "            slow(msg)",
            "            continue",
        ]
    lines += [
        "        data = msg.value()",
        "        if data is None:",
        "            continue",  # a tombstone: nothing to aggregate
        "        try:",
        "            d = loads(data)",
        "        except JSONDecodeError:",
        "            slow(msg)",
        "            continue",
        "        if type(d) is not dict:",
        "            slow(msg)",
        "            continue",
        "        layout = tuple(d)",
        "        reader = layouts.get(layout, False)",
        "        if reader is False:",
        "            reader = new_layout(layout)",
        "        if reader is None:",
        "            slow(msg)",
        "            continue",
    ]
    values = [f"v{i}" for i in range(len(types))]
    # v0, v1... of their column's Python type (so not null); group-by integers in range
    checks = [f"type(v{i}) is {_PY_TYPE[t].__name__}" for i, t in enumerate(types)]
    checks += [
        f"{lo} <= v{i} <= {hi}"
        for i, t in enumerate(types[:n_group])
        if t in _INT_RANGE
        for lo, hi in [_INT_RANGE[t]]
    ]
    lines += [
        f"        {', '.join(values)}{',' if len(values) == 1 else ''} = "
        f"{'(reader[0](d),)' if len(values) == 1 else 'reader[0](d)'}",
        f"        if not ({' and '.join(checks)}):",
        "            slow(msg)",
        "            continue",
        "        if reader[1] is not None and tuple(map(type, reader[1](d))) != reader[2]:",
        "            slow(msg)",
        "            continue",
    ]
    group = ", ".join(values[:n_group])
    lines += [
        f"        group = ({group},)",
        "        e = work.get(group)",
        "        if e is None:",
        "            e = open_entry(group)",
        "        ts = msg.timestamp()[1]",
        "        if ts > e[0]:",
        "            e[0] = ts",
    ]
    arg = n_group
    for j, (kind, has_column) in enumerate(kinds, start=1):
        if kind == "count":
            lines.append(f"        e[{j}] += 1")
        elif kind == "sum_double":
            lines.append(f"        e[{j}] += v{arg}")
        else:
            lo, hi = _INT_RANGE[kind.removeprefix("sum_").upper()]
            lines += [
                f"        s = e[{j}] + v{arg}",
                f"        if s > {hi} or s < {lo}:",
                f"            s = {kind}(s)",
                f"        e[{j}] = s",
            ]
        arg += has_column
    lines.append("    return n")
    namespace: dict[str, object] = {
        "loads": orjson.loads,
        "JSONDecodeError": orjson.JSONDecodeError,
        "CoercionError": CoercionError,
        "sum_integer": _wrapper(32),
        "sum_bigint": _wrapper(64),
    }
    exec(compile("\n".join(lines), "<batch aggregation loop>", "exec"), namespace)
    return namespace["run"]  # type: ignore[return-value]
