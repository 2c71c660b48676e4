"""Reconciliation: ksqlDB's totals against an independent batch recomputation from the topic."""

from cart_pipeline.reconcile.compare import Comparison, Discrepancy, compare
from cart_pipeline.reconcile.decode import CartRow, Rejected, decode_value
from cart_pipeline.reconcile.lag import LagReport, query_consumer_group, wait_for_offsets
from cart_pipeline.reconcile.recompute import Recomputation, recompute, recompute_partition
from cart_pipeline.reconcile.run import (
    MATCH,
    MISMATCH,
    STALE,
    ReconcileSpec,
    ReconciliationResult,
    reconcile,
)

__all__ = [
    "MATCH",
    "MISMATCH",
    "STALE",
    "CartRow",
    "Comparison",
    "Discrepancy",
    "LagReport",
    "Recomputation",
    "ReconcileSpec",
    "ReconciliationResult",
    "Rejected",
    "compare",
    "decode_value",
    "query_consumer_group",
    "recompute",
    "recompute_partition",
    "reconcile",
    "wait_for_offsets",
]
