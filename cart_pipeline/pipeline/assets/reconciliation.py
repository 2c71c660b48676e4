"""Quality: ksqlDB's totals against an independent recomputation from the event log."""

import os
from typing import Any, Literal

import dagster as dg
from pydantic import Field

from cart_pipeline.pipeline.assets.cart import current_shopping_cart
from cart_pipeline.pipeline.assets.events import TOPIC, cart_events_load
from cart_pipeline.pipeline.ddl import CURRENT_SHOPPING_CART
from cart_pipeline.pipeline.failures import fails_clearly
from cart_pipeline.pipeline.resources import KafkaResource, KsqlDBResource
from cart_pipeline.reconcile import MATCH, STALE, ReconcileSpec, SnapshotPolicy, reconcile

ASSET = "cart_reconciliation"
TOTALS_MATCH = "totals_match"
NO_REJECTED = "no_rejected_records"


class ReconcileConfig(dg.Config):
    lag_timeout_s: float = Field(
        default=60.0,
        description="How long to wait for the table's query to reach the snapshot; past it, "
        "the result is 'stale' (reported apart from a mismatch).",
    )
    worst: int = Field(default=20, description="Rows in the worst-mismatches table.")
    mode: Literal["auto", "full", "incremental"] = Field(
        default="auto",
        description="auto: recompute only the events after the last verified snapshot, with a "
        "periodic full run; full: recompute the whole log and compare every key; incremental: "
        "no periodic full run. A missing, corrupt or outdated snapshot always means full.",
    )
    full_every_runs: int = Field(
        default=int(os.environ.get("CART_RECONCILE_FULL_EVERY_RUNS", "24")),
        description="In auto mode, every Nth run is full (0: never by count).",
    )
    full_after_hours: float = Field(
        default=float(os.environ.get("CART_RECONCILE_FULL_AFTER_HOURS", "24")),
        description="In auto mode, a run this long after the last full one is full (0: never).",
    )
    workers: int = Field(
        default=0,
        ge=0,
        description="Worker processes for the recomputation (0: one per 200,000 events to "
        "read, at most one per CPU; 1: in this process).",
    )
    snapshot_topic: str = Field(
        default=os.environ.get("CART_RECONCILE_SNAPSHOT_TOPIC", ""),
        description="Compacted topic holding the verified snapshot "
        "(default: _cart_reconcile_snapshot.<event topic>).",
    )


@dg.asset(
    key=ASSET,
    deps=[current_shopping_cart, cart_events_load],
    group_name="quality",
    kinds={"python"},
    description="Checks every (customer, item) total served by ksqlDB against a batch "
    "recomputation of the event log, as of one consistent snapshot; incrementally from the "
    "last verified snapshot, with periodic full runs.",
    check_specs=[
        dg.AssetCheckSpec(
            TOTALS_MATCH,
            asset=ASSET,
            blocking=True,
            description="ksqlDB's totals equal the recomputation (ERROR; WARN when stale).",
        ),
        dg.AssetCheckSpec(
            NO_REJECTED,
            asset=ASSET,
            description="No record of the log was rejected by ksqlDB's deserializer (WARN).",
        ),
    ],
)
@fails_clearly
def cart_reconciliation(
    context: dg.AssetExecutionContext,
    config: ReconcileConfig,
    kafka: KafkaResource,
    ksqldb: KsqlDBResource,
) -> dg.MaterializeResult:
    spec = ReconcileSpec(
        topic=TOPIC,
        table=CURRENT_SHOPPING_CART.name,
        lag_timeout_s=config.lag_timeout_s,
        workers=config.workers or None,
    )
    policy = SnapshotPolicy(
        mode=config.mode,
        full_every_runs=config.full_every_runs,
        full_after_s=config.full_after_hours * 3600,
        topic=config.snapshot_topic or None,
        replication=int(os.environ.get("CART_TOPIC_REPLICATION", "1")),
    )
    with ksqldb.client() as ksql:
        result = reconcile(kafka.settings(), ksql, spec, policy)
    summary = result.summary()
    context.log.info(f"reconciliation: {summary}")
    rejected = result.rejected_by_reason
    metadata: dict[str, Any] = {
        **summary,
        "start_offsets": {str(p): o for p, o in result.start_offsets.items()},
        "snapshot_offsets": {str(p): o for p, o in result.snapshot.items()},
        "rejected_by_reason": rejected,
    }
    if result.comparison is not None:
        metadata["worst_mismatches"] = dg.MetadataValue.md(result.comparison.markdown(config.worst))

    if result.status == STALE:
        reason = (
            f"the query's lag was still {result.lag.total_lag} after {config.lag_timeout_s:.0f}s"
            if result.query_id
            else f"no persistent query maintains {spec.table} (was it terminated?)"
        )
        totals = dg.AssetCheckResult(
            check_name=TOTALS_MATCH,
            passed=False,
            severity=dg.AssetCheckSeverity.WARN,
            description=f"Stale: {reason}, so the totals could not be compared.",
            metadata={"status": STALE, "lag": result.lag.total_lag},
        )
    else:
        assert result.comparison is not None
        comparison = result.comparison
        totals = dg.AssetCheckResult(
            check_name=TOTALS_MATCH, passed=result.status == MATCH,
            severity=dg.AssetCheckSeverity.ERROR,
            description=(
                f"All {comparison.keys_compared} keys match" if comparison.ok else
                f"{len(comparison.discrepancies)} of {comparison.keys_compared} keys differ"
            ) + f" ({result.mode_reason}; served side: {result.served_mode}).",
            metadata={
                "status": result.status,
                "mode": result.mode,
                "keys_compared": comparison.keys_compared,
                "mismatches": len(comparison.discrepancies),
                "worst_mismatches": dg.MetadataValue.md(comparison.markdown(config.worst)),
            },
        )  # fmt: skip
    rejected_total = sum(rejected.values())
    no_rejected = dg.AssetCheckResult(
        check_name=NO_REJECTED, passed=rejected_total == 0, severity=dg.AssetCheckSeverity.WARN,
        description=f"{rejected_total} record(s) of the log are rejected by ksqlDB's deserializer.",
        metadata={"rejected_records": rejected_total, "by_reason": rejected},
    )  # fmt: skip
    return dg.MaterializeResult(metadata=metadata, check_results=[totals, no_rejected])
