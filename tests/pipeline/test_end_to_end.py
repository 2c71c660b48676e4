"""The whole pipeline through real Dagster runs against the real broker and engine.

One module, run in order: the pipeline's source names are fixed by its .sql files, so the
steps share them (the module starts from a clean slate).
"""

from __future__ import annotations

import time
from typing import Any

import dagster as dg
import pytest

from cart_pipeline.kafka_io import KafkaSettings, Topics
from cart_pipeline.ksql import KsqlClient
from cart_pipeline.loader import GeneratorConfig, generate
from cart_pipeline.pipeline import ASSETS, data_quality_alerts
from cart_pipeline.pipeline.resources import AlertWebhookResource
from cart_pipeline.reconcile.compare import markdown_cell
from tests.pipeline.conftest import WebhookReceiver, reset_pipeline_objects

pytestmark = pytest.mark.timeout(600)

LOAD = "cart_events_load"
#: Every load this module made, in order: the truth the view must equal.
LOADS: list[GeneratorConfig] = []
RECONCILE = "cart_reconciliation"


def run_config(events: int, seed: int, lag_timeout_s: float = 60, **load: Any) -> dict:
    LOADS.append(gen(events, seed, **{k: v for k, v in load.items() if k == "malformed_share"}))
    return {
        "ops": {
            LOAD: {"config": {"events": events, "seed": seed, "customers": 60, "items": 25,
                              **load}},
            RECONCILE: {"config": {"lag_timeout_s": lag_timeout_s}},
        }
    }  # fmt: skip


def materialize(
    resources: dict, instance: dg.DagsterInstance, config: dict, selection: list | None = None
) -> dg.ExecuteInJobResult:
    return dg.materialize(
        ASSETS, resources=resources, run_config=config, instance=instance,
        selection=selection, raise_on_error=False,
    )  # fmt: skip


def metadata(result: dg.ExecuteInJobResult, key: str) -> dict[str, Any]:
    events = result.asset_materializations_for_node(key)
    assert events, f"{key} was not materialized"
    return {k: v.value for k, v in events[-1].metadata.items()}


def checks(result: dg.ExecuteInJobResult) -> dict[str, dg.AssetCheckEvaluation]:
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def served(ksqldb_url: str) -> dict[tuple[str, str], int]:
    with KsqlClient(ksqldb_url) as ksql:
        rows = ksql.query("SELECT CUSTOMER, ITEM, TOTAL_QTY FROM CURRENT_SHOPPING_CART;").rows
    return {(r[0], r[1]): r[2] for r in rows}


def expected(*configs: GeneratorConfig) -> dict[tuple[str, str], int]:
    totals: dict[tuple[str, str], int] = {}
    for config in configs:
        for key, qty in generate(config).expected_totals.items():
            totals[key] = totals.get(key, 0) + qty
    return totals


def gen(events: int, seed: int, **extra: Any) -> GeneratorConfig:
    return GeneratorConfig(n_events=events, seed=seed, n_customers=60, n_items=25, **extra)


@pytest.fixture(scope="module", autouse=True)
def clean_slate(kafka_bootstrap: str, ksqldb_url: str) -> None:
    reset_pipeline_objects(kafka_bootstrap, ksqldb_url)


def test_all_assets_materialize_and_totals_match(
    resources: dict, instance: dg.DagsterInstance, ksqldb_url: str, kafka_bootstrap: str
) -> None:
    result = materialize(resources, instance, run_config(3000, seed=11))
    assert result.success
    topic = metadata(result, "shopping_cart_events_topic")
    assert topic["created"] is True and topic["partitions"] == 1
    assert metadata(result, "shopping_cart_events_stream")["created"] is True
    table = metadata(result, "current_shopping_cart")
    assert table["query_id"].startswith("CTAS_CURRENT_SHOPPING_CART_")
    assert table["consumer_group"] == f"_confluent-ksql-default_query_{table['query_id']}"
    load = metadata(result, LOAD)
    assert load["events_written"] == 3000 and load["seed"] == 11 and load["events_per_s"] > 0
    report = metadata(result, RECONCILE)
    assert report["status"] == "match" and report["mismatches"] == 0
    assert report["events_read"] == 3000 and report["rejected_records"] == 0
    assert report["percent_match"] == 100.0
    evaluations = checks(result)
    assert evaluations["totals_match"].passed and evaluations["no_rejected_records"].passed
    # Independent of the reconciliation code: the served view equals the generator's truth.
    truth = expected(*LOADS)
    assert served(ksqldb_url) == truth
    assert report["keys_compared"] == len(truth)


def test_rematerializing_is_idempotent(
    resources: dict, instance: dg.DagsterInstance, ksqldb_url: str
) -> None:
    result = materialize(resources, instance, run_config(1000, seed=12))
    assert result.success
    assert metadata(result, "shopping_cart_events_topic")["created"] is False
    assert metadata(result, "shopping_cart_events_stream")["created"] is False
    assert metadata(result, "current_shopping_cart")["created"] is False
    assert metadata(result, RECONCILE)["status"] == "match"
    assert served(ksqldb_url) == expected(*LOADS)


def test_malformed_records_are_rejected_not_a_mismatch(
    resources: dict, instance: dg.DagsterInstance
) -> None:
    result = materialize(resources, instance, run_config(2000, seed=13, malformed_share=0.05))
    assert result.success, "WARN checks do not fail the run"
    report = metadata(result, RECONCILE)
    malformed = generate(gen(2000, 13, malformed_share=0.05)).stats.malformed_total
    assert malformed == 100
    assert report["status"] == "match"
    assert report["rejected_records"] == malformed
    evaluations = checks(result)
    assert evaluations["totals_match"].passed
    assert not evaluations["no_rejected_records"].passed
    assert evaluations["no_rejected_records"].severity == dg.AssetCheckSeverity.WARN


def test_reconciliation_waits_for_lag_then_passes(
    resources: dict, instance: dg.DagsterInstance
) -> None:
    # The table commits every 3 s, so right after a load the query is behind the snapshot.
    result = materialize(resources, instance, run_config(500, seed=14), selection=[LOAD, RECONCILE])
    assert result.success
    report = metadata(result, RECONCILE)
    assert report["status"] == "match"
    assert report["lag_at_start"] > 0, "the reconciliation started while the query was behind"
    assert report["lag"] == 0


def test_partition_mismatch_fails_clearly(resources: dict, instance: dg.DagsterInstance) -> None:
    result = materialize(
        resources, instance,
        {"ops": {"shopping_cart_events_topic": {"config": {"partitions": 3}}}},  # no load
        selection=["shopping_cart_events_topic"],
    )  # fmt: skip
    assert not result.success
    failure = result.get_step_failure_events()[0].step_failure_data
    assert failure.error is not None
    assert "TopicMismatch: topic exists with 1 partition(s) but 3 were configured" in (
        failure.user_failure_data.description if failure.user_failure_data else ""
    )


def test_stale_when_the_query_is_stopped(
    resources: dict, instance: dg.DagsterInstance, ksqldb_url: str
) -> None:
    with KsqlClient(ksqldb_url) as ksql:
        query_id = ksql.describe("CURRENT_SHOPPING_CART").write_queries[0]
        ksql.execute(f"TERMINATE {query_id};")
    started = time.monotonic()
    result = materialize(
        resources, instance, run_config(300, seed=15, lag_timeout_s=3), selection=[LOAD, RECONCILE]
    )
    assert time.monotonic() - started < 120
    report = metadata(result, RECONCILE)
    assert report["status"] == "stale" and report["lag"] > 0
    totals = checks(result)["totals_match"]
    assert not totals.passed and totals.severity == dg.AssetCheckSeverity.WARN
    assert "Stale" in (totals.description or "")


def test_table_reading_from_latest_is_caught_and_alerted_once(
    resources: dict,
    instance: dg.DagsterInstance,
    ksqldb_url: str,
    kafka_bootstrap: str,
    webhook: WebhookReceiver,
) -> None:
    alerts = {"alerts": AlertWebhookResource(url=webhook.url)}
    context = dg.build_sensor_context(instance=instance, resources=alerts)
    data_quality_alerts(context)  # first tick: start watching from here
    cursor = context.cursor

    # The fault: the view re-created to read from `latest` — its history is missing.
    with KsqlClient(ksqldb_url) as ksql:
        ksql.execute("DROP TABLE current_shopping_cart DELETE TOPIC;")
        ksql.execute(
            "SET 'auto.offset.reset'='latest';\n"
            "CREATE TABLE current_shopping_cart WITH (KEY_FORMAT='JSON') AS SELECT customer, "
            "item, SUM(qty) as total_qty FROM shopping_cart_events GROUP BY customer, item "
            "EMIT CHANGES;"
        )
        # Wait until the new query is positioned at the end and reading: a canary event must
        # show up in the table. Until the query has positioned itself, `latest` skips the
        # canary too, so send one per second until one is seen.
        canaries = 0
        deadline = time.monotonic() + 60
        while ("canary", "probe") not in served(ksqldb_url):
            assert time.monotonic() < deadline, "the re-created table never read new events"
            ksql.insert_values("SHOPPING_CART_EVENTS", {"CUSTOMER": "canary", "ITEM": "probe",
                                                        "QTY": 1})  # fmt: skip
            canaries += 1
            time.sleep(1)
    before = Topics(KafkaSettings(kafka_bootstrap)).end_offsets("shopping_cart_events")
    assert sum(before.values()) > 0
    result = materialize(resources, instance, run_config(400, seed=16), selection=[LOAD, RECONCILE])
    assert not result.success, "a failed ERROR check is blocking: the run fails"
    report = metadata(result, RECONCILE)
    assert report["status"] == "mismatch" and report["mismatches"] > 0
    totals = checks(result)["totals_match"]
    assert not totals.passed and totals.severity == dg.AssetCheckSeverity.ERROR
    # The right keys: exactly those whose served total is not the log's truth.
    truth, now = expected(*LOADS), served(ksqldb_url)
    truth[("canary", "probe")] = canaries
    wrong = {k: (truth.get(k), now.get(k)) for k in truth.keys() | now.keys()
             if truth.get(k) != now.get(k)}  # fmt: skip
    assert report["mismatches"] == len(wrong) > 0
    worst = max(wrong.items(), key=lambda kv: (abs((kv[1][0] or 0) - (kv[1][1] or 0)), kv[0]))
    table = str(totals.metadata["worst_mismatches"].value)
    assert markdown_cell(worst[0][0]) in table and markdown_cell(worst[0][1]) in table

    for _ in range(2):  # a second tick must not repeat the alert
        context = dg.build_sensor_context(instance=instance, resources=alerts, cursor=cursor)
        data_quality_alerts(context)
        cursor = context.cursor
    # Exactly one alert per failed evaluation (the log still holds the malformed records of an
    # earlier test, so no_rejected_records fails too), none for passes, none repeated.
    failed = [e for e in result.get_asset_check_evaluations() if not e.passed]
    assert len(webhook.received) == len(failed) == 2
    texts = [alert["text"] for alert in webhook.received]
    assert sum("`totals_match`" in t and "[ERROR]" in t for t in texts) == 1
    assert sum("`no_rejected_records`" in t and "[WARN]" in t for t in texts) == 1
    assert all(webhook.url not in str(alert) for alert in webhook.received)


def test_stream_with_another_definition_fails_with_a_diff(
    resources: dict, instance: dg.DagsterInstance, ksqldb_url: str
) -> None:
    with KsqlClient(ksqldb_url) as ksql:
        ksql.execute("DROP TABLE IF EXISTS current_shopping_cart DELETE TOPIC;")
        ksql.execute("DROP STREAM shopping_cart_events;")
        ksql.execute(
            "CREATE STREAM shopping_cart_events (customer VARCHAR, item VARCHAR, qty BIGINT) "
            "WITH (kafka_topic='shopping_cart_events', value_format='json');"
        )
    result = materialize(resources, instance, {}, selection=["shopping_cart_events_stream"])
    assert not result.success
    failure = result.get_step_failure_events()[0].step_failure_data.user_failure_data
    assert failure is not None and failure.description is not None
    message = failure.description
    assert "STREAM SHOPPING_CART_EVENTS already exists with a different definition" in message
    assert "-QTY INTEGER" in message and "+QTY BIGINT" in message
    with KsqlClient(ksqldb_url) as ksql:  # left unchanged
        fields = {f.name: f.sql_type for f in ksql.describe("SHOPPING_CART_EVENTS").fields}
    assert fields["QTY"] == "BIGINT"
