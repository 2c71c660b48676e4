"""Reconciliation: ksqlDB's totals against an independent batch recomputation from the topic."""

from cart_pipeline.reconcile.compare import Comparison, Discrepancy, compare
from cart_pipeline.reconcile.decode import CartRow, Rejected, decode_value
from cart_pipeline.reconcile.lag import LagReport, query_consumer_group, wait_for_offsets
from cart_pipeline.reconcile.recompute import Recomputation, recompute, recompute_partition
from cart_pipeline.reconcile.run import (
    FULL,
    INCREMENTAL,
    MATCH,
    MISMATCH,
    STALE,
    ReconcileSpec,
    ReconciliationResult,
    SnapshotPolicy,
    reconcile,
)
from cart_pipeline.reconcile.snapshot import Snapshot, SnapshotUnusable
from cart_pipeline.reconcile.store import LogReader, SnapshotStore, snapshot_topic_for

__all__ = [
    "FULL",
    "INCREMENTAL",
    "MATCH",
    "MISMATCH",
    "STALE",
    "CartRow",
    "Comparison",
    "Discrepancy",
    "LagReport",
    "LogReader",
    "Recomputation",
    "ReconcileSpec",
    "ReconciliationResult",
    "Rejected",
    "Snapshot",
    "SnapshotPolicy",
    "SnapshotStore",
    "SnapshotUnusable",
    "compare",
    "decode_value",
    "query_consumer_group",
    "recompute",
    "recompute_partition",
    "reconcile",
    "snapshot_topic_for",
    "wait_for_offsets",
]
