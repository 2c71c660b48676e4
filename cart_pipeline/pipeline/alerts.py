"""Data-quality alerts: one webhook message per failed asset-check evaluation.

Open-source Dagster has no asset-check sensor, so this sensor reads check evaluations from
the event log with a cursor (per check, the last execution record it handled). A failed
evaluation — ERROR or WARN — is posted once; passes are not. The cursor only moves past an
evaluation once its alert was delivered, so a webhook outage delays alerts, never drops them.
"""

import json

import dagster as dg
from dagster._core.storage.asset_check_execution_record import (
    AssetCheckExecutionRecord,
    AssetCheckExecutionRecordStatus,
)

from cart_pipeline.pipeline.resources import AlertDeliveryError, AlertWebhookResource

BATCH = 100


def render_alert(evaluation: dg.AssetCheckEvaluation, run_id: str) -> tuple[str, list[dict]]:
    severity = evaluation.severity.value
    key = evaluation.asset_key.to_user_string()
    text = (
        f":rotating_light: [{severity}] data-quality check `{evaluation.check_name}` failed on "
        f"`{key}` (run {run_id[:8]})"
    )
    description = evaluation.description or ""
    details = {k: v.value for k, v in evaluation.metadata.items()}
    worst = details.pop("worst_mismatches", None)
    lines = [text]
    if description:
        lines.append(description)
    facts = ", ".join(f"{k}: {v}" for k, v in details.items() if not isinstance(v, dict))
    if facts:
        lines.append(facts)
    blocks: list[dict] = [{"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(lines)}}]
    if isinstance(worst, str) and "|" in worst:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": f"```{worst}```"}})
    return "\n".join(lines), blocks


def _check_keys() -> list[dg.AssetCheckKey]:
    from cart_pipeline.pipeline.assets.reconciliation import ASSET, NO_REJECTED, TOTALS_MATCH

    return [dg.AssetCheckKey(dg.AssetKey(ASSET), name) for name in (TOTALS_MATCH, NO_REJECTED)]


def _newer_records(
    instance: dg.DagsterInstance, key: dg.AssetCheckKey, after: int
) -> list[AssetCheckExecutionRecord]:
    """Execution records of ``key`` with id > ``after``, oldest first (bounded)."""
    records = instance.event_log_storage.get_asset_check_execution_history(key, limit=BATCH)
    return sorted((r for r in records if r.id > after), key=lambda r: r.id)


def _settled(instance: dg.DagsterInstance, record: AssetCheckExecutionRecord) -> bool:
    """Evaluated, or planned by a run that ended without evaluating it (never will)."""
    if record.status != AssetCheckExecutionRecordStatus.PLANNED:
        return True
    run = instance.get_run_by_id(record.run_id)
    return run is None or run.is_finished


@dg.sensor(
    name="data_quality_alerts",
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Posts one alert per failed asset-check evaluation to CART_ALERT_WEBHOOK_URL.",
)
def data_quality_alerts(
    context: dg.SensorEvaluationContext, alerts: AlertWebhookResource
) -> dg.SkipReason:
    """The cursor maps each watched check to the id of the last execution record handled.

    Execution records (not raw event-log ids) are used because they are ordered the same way
    on every event-log storage, the run-sharded SQLite default included.
    """
    instance = context.instance
    keys = _check_keys()
    if not context.cursor:
        # First evaluation: start from now; alerts are for checks evaluated from here on.
        start = {}
        for key in keys:
            latest = instance.event_log_storage.get_asset_check_execution_history(key, limit=1)
            start[key.to_user_string()] = latest[0].id if latest else 0
        context.update_cursor(json.dumps(start))
        return dg.SkipReason("sensor started; watching check evaluations from here on")
    cursor: dict[str, int] = json.loads(context.cursor)
    sent = 0
    for key in keys:
        name = key.to_user_string()
        for record in _newer_records(instance, key, cursor.get(name, 0)):
            if not _settled(instance, record):
                break  # still running: look again at the next evaluation
            evaluation = record.evaluation
            if record.status == AssetCheckExecutionRecordStatus.FAILED and evaluation is not None:
                text, blocks = render_alert(evaluation, record.run_id)
                context.log.warning(text)
                if alerts.enabled:
                    try:
                        alerts.post(text, blocks)
                    except AlertDeliveryError as exc:
                        context.log.error(f"{exc}; will retry at the next evaluation")
                        context.update_cursor(json.dumps(cursor))
                        return dg.SkipReason(f"{sent} alert(s) sent; delivery failed: {exc}")
                sent += 1
            cursor[name] = record.id
    context.update_cursor(json.dumps(cursor))
    return dg.SkipReason(f"{sent} alert(s) sent" if sent else "no failed checks")
