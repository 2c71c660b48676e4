"""The schedule and the alert sensor evaluate, and the scheduled job really runs."""

from __future__ import annotations

import dagster as dg
import pytest

from cart_pipeline.definitions import defs
from cart_pipeline.pipeline import ASSETS, data_quality_alerts, load_schedule
from cart_pipeline.pipeline.resources import AlertWebhookResource
from tests.pipeline.conftest import WebhookReceiver, reset_pipeline_objects

pytestmark = pytest.mark.timeout(600)


def test_schedule_is_stopped_by_default_and_requests_the_load_job() -> None:
    assert load_schedule.default_status == dg.DefaultScheduleStatus.STOPPED
    assert load_schedule.job_name == "load_and_reconcile_job"
    with dg.instance_for_test() as instance:
        context = dg.build_schedule_context(instance=instance)
        requests = load_schedule.evaluate_tick(context).run_requests
    assert requests is not None and len(requests) == 1
    assert requests[0].job_name in (None, "load_and_reconcile_job")


def test_alert_sensor_starts_quietly_and_sends_nothing_for_passes(webhook: WebhookReceiver) -> None:
    with dg.instance_for_test() as instance:
        resources = {"alerts": AlertWebhookResource(url=webhook.url)}
        context = dg.build_sensor_context(instance=instance, resources=resources)
        first = data_quality_alerts(context)
        assert isinstance(first, dg.SkipReason) and context.cursor
        context = dg.build_sensor_context(
            instance=instance, resources=resources, cursor=context.cursor
        )
        second = data_quality_alerts(context)
        assert isinstance(second, dg.SkipReason)
        assert "no failed checks" in (second.skip_message or "")
    assert webhook.received == []


def test_the_scheduled_job_runs(
    resources: dict, instance: dg.DagsterInstance, kafka_bootstrap: str, ksqldb_url: str
) -> None:
    reset_pipeline_objects(kafka_bootstrap, ksqldb_url)
    setup = dg.materialize(
        ASSETS, resources=resources, instance=instance,
        run_config={"ops": {"cart_events_load": {"config": {"events": 200, "seed": 1}}}},
    )  # fmt: skip
    assert setup.success
    job = defs.resolve_job_def("load_and_reconcile_job")
    context = dg.build_schedule_context(instance=instance)
    request = load_schedule.evaluate_tick(context).run_requests[0]  # type: ignore[index]
    result = job.execute_in_process(
        run_config=request.run_config, instance=instance, resources=resources,
        tags=request.tags,
    )  # fmt: skip
    assert result.success
    assert {e.check_name: e.passed for e in result.get_asset_check_evaluations()} == {
        "totals_match": True,
        "no_rejected_records": True,
    }
