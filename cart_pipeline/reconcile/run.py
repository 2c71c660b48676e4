"""One reconciliation: ksqlDB's served totals against the recomputation, as of one snapshot.

1. Snapshot: the topic's read_committed end offsets.
2. Recompute the totals from the topic up to the snapshot.
3. Wait (bounded) until the table's persistent query has committed up to the snapshot. If it
   never does, the result is **stale** — reported apart from a mismatch.
4. Read the served totals with a pull query over ksqlDB's REST API.
5. Keys changed by events after the snapshot (a load running meanwhile) may already be in the
   served totals; they are set aside as *in flight* rather than reported as mismatches.
6. Compare per key: missing in ksqlDB, extra in ksqlDB, different totals.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from cart_pipeline.kafka_io import KafkaSettings, Topics
from cart_pipeline.ksql import KsqlClient, quote_identifier
from cart_pipeline.reconcile.compare import CartKey, Comparison, compare
from cart_pipeline.reconcile.lag import LagReport, query_consumer_group, wait_for_offsets
from cart_pipeline.reconcile.recompute import Recomputation, recompute

MATCH, MISMATCH, STALE = "match", "mismatch", "stale"


@dataclass(frozen=True)
class ReconcileSpec:
    topic: str = "shopping_cart_events"
    table: str = "CURRENT_SHOPPING_CART"
    customer_column: str = "CUSTOMER"
    item_column: str = "ITEM"
    total_column: str = "TOTAL_QTY"
    lag_timeout_s: float = 60.0


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

    def summary(self) -> dict[str, Any]:
        """Numbers for metadata and logs (no secrets, no raw values)."""
        out: dict[str, Any] = {
            "status": self.status,
            "query_id": self.query_id,
            "consumer_group": self.lag.group,
            "events_read": self.recomputation.records,
            "rejected_records": self.recomputation.rejected_total,
            "lag": self.lag.total_lag,
            "lag_at_start": self.lag.initial_lag,
            "lag_wait_seconds": round(self.lag.waited_s, 3),
            "served_keys": self.served_keys,
            "expected_keys": len(self.recomputation.totals),
            "reconcile_seconds": round(sum(self.timings.values()), 3),
        }
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


def reconcile(
    settings: KafkaSettings, ksql: KsqlClient, spec: ReconcileSpec
) -> ReconciliationResult:
    timings: dict[str, float] = {}
    clock = time.monotonic()
    query_id = table_query_id(ksql, spec.table)
    topics = Topics(settings)
    snapshot = topics.end_offsets(spec.topic)

    recomputation = recompute(settings, spec.topic, snapshot)
    timings["recompute_s"] = recomputation.elapsed_s
    targets = {p: recomputation.data_ends.get(p, 0) for p in snapshot}
    if query_id is None:
        # Nothing maintains the table any more: it can never catch up. Stale, at once.
        lag = LagReport("", {}, targets, 0.0, sum(targets.values()))
        return ReconciliationResult(STALE, snapshot, recomputation, lag, timings=timings)
    group = query_consumer_group(ksql.server_info().ksql_service_id, query_id)
    # Wait for the query to have read every record of the snapshot. Its committed offset may
    # stop before trailing transaction markers (engines differ), so the target is one past
    # the last record, not the end offset.
    lag = wait_for_offsets(settings, group, spec.topic, targets, spec.lag_timeout_s)
    timings["wait_s"] = lag.waited_s
    result = ReconciliationResult(STALE, snapshot, recomputation, lag, query_id=query_id)
    if not lag.caught_up:
        result.timings = timings
        return result

    started = time.monotonic()
    served = served_totals(ksql, spec)
    # Anything committed after the snapshot may already be reflected in `served`.
    after = topics.end_offsets(spec.topic)
    in_flight: set[CartKey] = set()
    if after != snapshot:
        newer = recompute(settings, spec.topic, after, start_offsets=snapshot)
        in_flight = set(newer.totals)
    result.comparison = compare(recomputation.totals, served, exclude=in_flight)
    result.served_keys = len(served)
    result.status = MATCH if result.comparison.ok else MISMATCH
    timings["serve_and_compare_s"] = time.monotonic() - started
    timings["setup_s"] = max(0.0, time.monotonic() - clock - sum(timings.values()))
    result.timings = timings
    return result
