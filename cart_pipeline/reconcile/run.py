"""One reconciliation: ksqlDB's served totals against the recomputation, as of one snapshot.

1. Snapshot: the topic's read_committed end offsets (and, just before, the end offsets of the
   table's changelog topic, kept for the next incremental run).
2. Recompute the totals from the topic up to the snapshot — all of it (*full*), or only the
   events after the last verified snapshot, folded onto its totals (*incremental*).
3. Wait (bounded) until the table's persistent query has committed up to the snapshot. If it
   never does, the result is **stale** — reported apart from a mismatch.
4. Read the served totals: a pull query over the whole table (full), or the table's changelog
   since the last snapshot (incremental; see ``changelog.py``).
5. Keys changed by events after the snapshot (a load running meanwhile) may already be in the
   served totals; they are set aside as *in flight* rather than reported as mismatches.
6. Compare per key: missing in ksqlDB, extra in ksqlDB, different totals.
7. On a match, persist the recomputed totals as the new snapshot (``store.py``): after an
   incremental run, only the keys it touched, as a delta on the snapshot it started from.

The trade-off of the incremental comparison: it checks every key with a new event and every
row ksqlDB re-emitted, never the rest. A served total that drifts *without* any changelog
record (a corrupted state store, a pull-query bug) is caught only by a full run — so full runs
stay periodic (``SnapshotPolicy``) and can be forced.
"""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from cart_pipeline.kafka_io import KafkaIOError, KafkaSettings, TopicNotFound
from cart_pipeline.ksql import KsqlClient, quote_identifier
from cart_pipeline.reconcile.changelog import read_changelog
from cart_pipeline.reconcile.compare import CartKey, Comparison, compare
from cart_pipeline.reconcile.decode import wrap_int32
from cart_pipeline.reconcile.lag import LagReport, query_consumer_group, wait_for_offsets
from cart_pipeline.reconcile.recompute import Recomputation, recompute
from cart_pipeline.reconcile.snapshot import (
    Snapshot,
    SnapshotUnusable,
    TopicState,
    unusable_reason,
)
from cart_pipeline.reconcile.store import LogReader, SavedSnapshot, SnapshotStore

MATCH, MISMATCH, STALE = "match", "mismatch", "stale"
FULL, INCREMENTAL = "full", "incremental"
MODES = ("auto", FULL, INCREMENTAL)
SERVED_SCAN, SERVED_CHANGELOG = "pull query (all keys)", "changelog since snapshot"
#: Pause before reading the changelog's tail again when the first look found differences.
CHANGELOG_RECHECK_S = 0.5


@dataclass(frozen=True)
class ReconcileSpec:
    topic: str = "shopping_cart_events"
    table: str = "CURRENT_SHOPPING_CART"
    customer_column: str = "CUSTOMER"
    item_column: str = "ITEM"
    total_column: str = "TOTAL_QTY"
    lag_timeout_s: float = 60.0
    #: Recomputation worker processes; None picks (see ``recompute``).
    workers: int | None = None


@dataclass(frozen=True)
class SnapshotPolicy:
    """When to reconcile incrementally, and whether to keep the snapshot.

    ``mode``: ``auto`` — incremental from a usable snapshot unless a periodic full run is due;
    ``full`` — always full; ``incremental`` — never a periodic full run (a missing, corrupt or
    outdated snapshot still means full). A full run is due after ``full_every_runs`` runs
    (0: never) or ``full_after_s`` seconds since the last full one (0: never).
    """

    mode: str = "auto"
    full_every_runs: int = 24
    full_after_s: float = 86_400.0
    #: The snapshot topic; None: ``_cart_reconcile_snapshot.<topic>``.
    topic: str | None = None
    replication: int = 1
    persist: bool = True

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        if self.full_every_runs < 0 or self.full_after_s < 0:
            raise ValueError("full_every_runs and full_after_s must be >= 0 (0 = never)")

    @property
    def uses_snapshots(self) -> bool:
        return self.persist or self.mode != FULL


#: ``reconcile()`` without a policy: full, and nothing persisted (the behaviour before snapshots).
NO_SNAPSHOTS = SnapshotPolicy(mode=FULL, persist=False)


@dataclass
class ReconciliationResult:
    status: str
    snapshot: dict[int, int]
    recomputation: Recomputation
    lag: LagReport
    comparison: Comparison | None = None
    query_id: str = ""
    served_keys: int = 0
    timings: dict[str, float] = field(default_factory=dict)
    mode: str = FULL
    #: Why this mode, e.g. "full: no snapshot", "incremental from offsets {0: 1200}".
    mode_reason: str = ""
    #: The snapshot folded onto (incremental runs only).
    base: Snapshot | None = None
    served_mode: str = SERVED_SCAN
    served_reason: str = ""
    snapshot_age_s: float | None = None
    saved: SavedSnapshot | None = None
    #: Why no snapshot was persisted, when none was.
    save_note: str = ""

    @property
    def start_offsets(self) -> dict[int, int]:
        return dict(self.base.offsets) if self.base else {p: 0 for p in self.snapshot}

    @property
    def events_total(self) -> int:
        """Records in the log up to the snapshot (read now or folded into the base)."""
        return self.recomputation.records + (self.base.records if self.base else 0)

    @property
    def rejected_by_reason(self) -> dict[str, int]:
        """Log-wide, like a full run: the base's rejections plus this run's."""
        total = Counter(self.base.rejected if self.base else {})
        total.update(self.recomputation.rejected)
        return dict(total)

    def summary(self) -> dict[str, Any]:
        """Numbers for metadata and logs (no secrets, no raw values)."""
        out: dict[str, Any] = {
            "status": self.status,
            "mode": self.mode,
            "mode_reason": self.mode_reason,
            "served_comparison": self.served_mode,
            "query_id": self.query_id,
            "consumer_group": self.lag.group,
            "events_read": self.recomputation.records,
            "events_total": self.events_total,
            "rejected_records": sum(self.rejected_by_reason.values()),
            "lag": self.lag.total_lag,
            "lag_at_start": self.lag.initial_lag,
            "lag_wait_seconds": round(self.lag.waited_s, 3),
            "served_keys": self.served_keys,
            "expected_keys": len(self.recomputation.totals),
            "reconcile_seconds": round(sum(self.timings.values()), 3),
            "snapshot_persisted": self.saved is not None,
        }
        if self.saved is not None:
            out["snapshot_written"] = f"{self.saved.kind} ({self.saved.keys} keys)"
            out["snapshot_segments"] = self.saved.segments
        if self.served_reason:
            out["served_reason"] = self.served_reason
        if self.snapshot_age_s is not None:
            out["snapshot_age_s"] = round(self.snapshot_age_s, 1)
        if self.save_note:
            out["snapshot_note"] = self.save_note
        if self.comparison is not None:
            out.update({
                "keys_compared": self.comparison.keys_compared,
                "mismatches": len(self.comparison.discrepancies),
                "missing_in_ksqldb": self.comparison.counts.get("missing in ksqlDB", 0),
                "extra_in_ksqldb": self.comparison.counts.get("extra in ksqlDB", 0),
                "different_totals": self.comparison.counts.get("different total", 0),
                "percent_match": round(self.comparison.percent_match, 4),
                "in_flight_keys": self.comparison.excluded_in_flight,
            })  # fmt: skip
        return out


def table_query_id(ksql: KsqlClient, table: str) -> str | None:
    """The persistent query writing ``table``; None when it was terminated (not maintained)."""
    writers = ksql.describe(table).write_queries
    return writers[0] if writers else None


def served_totals(ksql: KsqlClient, spec: ReconcileSpec) -> dict[CartKey, int]:
    columns = ", ".join(
        quote_identifier(c) for c in (spec.customer_column, spec.item_column, spec.total_column)
    )
    result = ksql.query(f"SELECT {columns} FROM {quote_identifier(spec.table)};")
    return {(row[0], row[1]): row[2] for row in result.rows}


def choose_base(
    policy: SnapshotPolicy, store: SnapshotStore, reader: LogReader, state: TopicState, now: float
) -> tuple[Snapshot | None, Snapshot | None, str]:
    """(base to fold onto or None for full, the snapshot loaded if any, why).

    Decides on the manifest alone: the snapshots returned have no totals yet
    (``store.load_totals`` reads them, while the new events are recomputed).
    """
    if policy.mode == FULL:
        return None, None, "full: requested (mode=full)"
    try:
        loaded = store.load_manifest(reader)
    except SnapshotUnusable as exc:
        return None, None, f"full: {exc.reason}"
    if why := unusable_reason(loaded, state):
        return None, loaded, f"full: {why}"
    if policy.mode == "auto":
        if policy.full_every_runs and loaded.runs_since_full + 1 >= policy.full_every_runs:
            return None, loaded, f"full: periodic (every {policy.full_every_runs} runs)"
        since = now - loaded.last_full_at
        if policy.full_after_s and since >= policy.full_after_s:
            return None, loaded, f"full: periodic (last full run {since / 3600:.1f} h ago)"
    return loaded, loaded, f"incremental from offsets {loaded.offsets}"


def _load_while_recomputing(
    settings: KafkaSettings,
    spec: ReconcileSpec,
    store: SnapshotStore,
    reader: LogReader,
    header: Snapshot,
    ends: dict[int, int],
) -> tuple[Snapshot | None, Recomputation, str]:
    """(the whole base or None, the events after it, why): both reads at once.

    Each mostly waits on the broker (a fetch, a consumer's start), so the recomputation of the
    new events runs in a thread while this one reads and decodes the snapshot's chunks. A
    corrupt chunk still means a full run (None), whatever the thread read.
    """
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="recompute") as pool:
        future = pool.submit(
            recompute, settings, spec.topic, ends, header.offsets, workers=spec.workers
        )
        try:
            base: Snapshot | None = store.load_totals(reader)
            reason = f"incremental from offsets {header.offsets}"
        except SnapshotUnusable as exc:
            base, reason = None, f"full: {exc.reason}"
        delta = future.result()
    return base, delta, reason


def changelog_unusable(base: Snapshot, sink: TopicState, query_id: str) -> str | None:
    """Why the table's changelog cannot stand for its served values since ``base``, or None."""
    if base.query_id != query_id:
        return f"the table's query changed since the snapshot ({base.query_id} -> {query_id})"
    if base.sink_topic != sink.topic or base.sink_topic_id != sink.topic_id:
        return "the table's topic was re-created since the snapshot"
    if set(base.sink_offsets) != set(sink.ends):
        return "the table's topic changed its partition count"
    for p, offset in base.sink_offsets.items():
        if not sink.starts[p] <= offset <= sink.ends[p]:
            return f"the table's topic no longer holds offset {offset} of partition {p}"
    return None


def fold(base: Snapshot, delta: Recomputation) -> Recomputation:
    """``delta`` (events after the base's offsets) folded onto the base's totals."""
    totals = dict(base.totals)
    for key, value in delta.totals.items():
        totals[key] = wrap_int32(totals.get(key, 0) + value)
    # The query's lag target: one past the last record; unchanged where nothing was read.
    data_ends = {
        p: end if end > base.offsets.get(p, 0) else base.data_ends.get(p, 0)
        for p, end in delta.data_ends.items()
    }
    return Recomputation(
        totals=totals, end_offsets=dict(delta.end_offsets), data_ends=data_ends,
        records=delta.records, rejected=delta.rejected, tombstones=delta.tombstones,
        null_keys=delta.null_keys, elapsed_s=delta.elapsed_s,
    )  # fmt: skip


def reconcile(
    settings: KafkaSettings,
    ksql: KsqlClient,
    spec: ReconcileSpec,
    policy: SnapshotPolicy = NO_SNAPSHOTS,
) -> ReconciliationResult:
    """Reconcile once; with a snapshot policy, incrementally where a verified snapshot allows."""
    with LogReader(settings) as reader:
        return _reconcile(settings, ksql, spec, policy, reader)


def _reconcile(
    settings: KafkaSettings,
    ksql: KsqlClient,
    spec: ReconcileSpec,
    policy: SnapshotPolicy,
    reader: LogReader,
) -> ReconciliationResult:
    timings: dict[str, float] = {}
    clock, now = time.monotonic(), time.time()
    description = ksql.describe(spec.table)
    query_id = description.write_queries[0] if description.write_queries else None
    # The changelog's ends are read *before* the event snapshot: every change caused by an
    # event after the snapshot is then at or after them (what the next run starts from).
    sink: TopicState | None = None
    if query_id and policy.uses_snapshots:
        # No topic: compared in full, and nothing to continue from (not persisted).
        with contextlib.suppress(TopicNotFound):
            sink = reader.state(description.topic)
    state = reader.state(spec.topic)
    snapshot = state.ends
    store = SnapshotStore(settings, spec.topic, policy.topic, policy.replication)
    base, loaded, reason = None, None, "full: snapshots off"
    if policy.uses_snapshots:
        started = time.monotonic()
        base, loaded, reason = choose_base(policy, store, reader, state, now)
        timings["snapshot_load_s"] = time.monotonic() - started

    touched: set[CartKey] | None = None  # keys with events after the base; None: all keys
    started = time.monotonic()
    delta: Recomputation | None = None
    if base is not None:
        base, delta, reason = _load_while_recomputing(settings, spec, store, reader, base, snapshot)
        loaded = base  # None: its chunks were unusable, as if it had not loaded
    if base is None or delta is None:
        recomputation = recompute(settings, spec.topic, snapshot, workers=spec.workers)
    else:
        recomputation, touched = fold(base, delta), set(delta.totals)
    # Incremental: the snapshot's totals loaded meanwhile (not timed apart).
    timings["recompute_s"] = time.monotonic() - started
    targets = {p: recomputation.data_ends.get(p, 0) for p in snapshot}
    result = ReconciliationResult(
        STALE, snapshot, recomputation, LagReport("", {}, targets, 0.0, sum(targets.values())),
        query_id=query_id or "", mode=FULL if base is None else INCREMENTAL, mode_reason=reason,
        base=base, snapshot_age_s=None if loaded is None else loaded.age_s(now),
    )  # fmt: skip
    if query_id is None:
        # Nothing maintains the table any more: it can never catch up. Stale, at once.
        result.timings, result.save_note = timings, "not persisted: stale"
        return result
    group = query_consumer_group(ksql.server_info().ksql_service_id, query_id)
    # Wait for the query to have read every record of the snapshot. Its committed offset may
    # stop before trailing transaction markers (engines differ), so the target is one past
    # the last record, not the end offset.
    result.lag = wait_for_offsets(
        settings, group, spec.topic, targets, spec.lag_timeout_s, admin=reader.admin
    )
    timings["wait_s"] = result.lag.waited_s
    if not result.lag.caught_up:
        result.timings, result.save_note = timings, "not persisted: stale"
        return result

    started = time.monotonic()
    # The changelog's ends after the wait: every change caused by the snapshot's events is
    # below them (the query committed them, and a sink record is written before or with it).
    sink_now = reader.state(sink.topic) if sink is not None else None
    for attempt in (1, 2):
        expected, served = _expected_and_served(ksql, spec, reader, result, sink, sink_now, touched)
        # Anything committed after the snapshot may already be reflected in `served`.
        after = reader.state(spec.topic).ends
        in_flight: set[CartKey] = set()
        if after != snapshot:
            in_flight = set(recompute(settings, spec.topic, after, start_offsets=snapshot).totals)
        comparison = result.comparison = compare(expected, served, exclude=in_flight)
        if comparison.ok or result.served_mode != SERVED_CHANGELOG or attempt == 2:
            break
        # A transaction's sink records may turn visible a moment after its offsets (markers
        # land partition by partition): read the changelog's tail once more before judging.
        time.sleep(CHANGELOG_RECHECK_S)
        sink_now = reader.state(sink.topic) if sink is not None else None
    result.status = MATCH if comparison.ok else MISMATCH
    timings["serve_and_compare_s"] = time.monotonic() - started

    if not policy.persist:
        result.save_note = "not persisted: persisting is off"
    elif result.status != MATCH:
        result.save_note = f"not persisted: {result.status}"
    elif sink is None:
        result.save_note = f"not persisted: the table's topic {description.topic} is missing"
    else:
        started = time.monotonic()
        try:
            # Where the next run reads the changelog from: `sink_now` when no event followed
            # the snapshot before it was read (so no later change can precede it), else the
            # ends read before the snapshot.
            since = sink_now if after == snapshot and sink_now is not None else sink
            if since.topic_id != sink.topic_id:
                since = sink
            # After an incremental run only the keys with new events can have changed.
            following = _next_snapshot(result, state, since, now)
            result.saved = store.save(following, base=result.base, changed=touched or ())
        except (KafkaIOError, ValueError) as exc:
            result.save_note = f"not persisted: {exc}"
        timings["snapshot_save_s"] = time.monotonic() - started
    timings["setup_s"] = max(0.0, time.monotonic() - clock - sum(timings.values()))
    result.timings = timings
    return result


def _expected_and_served(
    ksql: KsqlClient,
    spec: ReconcileSpec,
    reader: LogReader,
    result: ReconciliationResult,
    sink: TopicState | None,
    sink_now: TopicState | None,
    touched: set[CartKey] | None,
) -> tuple[dict[CartKey, int], dict[CartKey, int]]:
    """What to compare: every key (full scan), or the changed ones (changelog)."""
    base, totals = result.base, result.recomputation.totals
    why = "full run"
    if base is not None and touched is not None:
        why = "no changelog topic" if sink is None else (
            changelog_unusable(base, sink, result.query_id) or "")  # fmt: skip
        if not why:
            assert sink is not None and sink_now is not None
            columns = (spec.customer_column, spec.item_column, spec.total_column)
            log = read_changelog(reader, sink.topic, base.sink_offsets, sink_now.ends, columns)
            result.served_keys = log.records
            if log.undecodable:
                why = f"{log.undecodable} changelog record(s) are not the table's shape"
            else:
                result.served_mode = SERVED_CHANGELOG
                keys = touched | log.latest.keys()
                served = {k: v for k in keys
                          if (v := log.latest[k] if k in log.latest else base.totals.get(k))
                          is not None}  # fmt: skip
                return {k: totals[k] for k in keys if k in totals}, served
    result.served_mode, result.served_reason = SERVED_SCAN, why
    served = served_totals(ksql, spec)
    result.served_keys = len(served)
    return totals, served


def _next_snapshot(
    result: ReconciliationResult, state: TopicState, sink: TopicState, now: float
) -> Snapshot:
    base, r = result.base, result.recomputation
    rejected = result.rejected_by_reason
    return Snapshot(
        source_topic=state.topic, topic_id=state.topic_id, offsets=dict(result.snapshot),
        data_ends={p: r.data_ends.get(p, 0) for p in result.snapshot}, totals=r.totals,
        records=result.events_total, rejected=rejected,
        tombstones=r.tombstones + (base.tombstones if base else 0),
        null_keys=r.null_keys + (base.null_keys if base else 0),
        created_at=now, last_full_at=now if base is None else base.last_full_at,
        runs_since_full=0 if base is None else base.runs_since_full + 1,
        query_id=result.query_id, sink_topic=sink.topic, sink_topic_id=sink.topic_id,
        sink_offsets=dict(sink.ends),
    )  # fmt: skip
