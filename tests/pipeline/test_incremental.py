"""Incremental reconciliation through real Dagster runs, on the real broker and engine.

One module, run in order (the pipeline's names are fixed): a first full run persists the
snapshot; later runs read only the events after it, fall back to full when it is missing,
corrupt, due or outdated, and never persist after a mismatch.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import dagster as dg
import orjson
import pytest
from confluent_kafka import Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from cart_pipeline.kafka_io import KafkaSettings, Topics
from cart_pipeline.ksql import KsqlClient
from cart_pipeline.loader import GeneratorConfig, generate
from cart_pipeline.pipeline import ASSETS
from cart_pipeline.reconcile import LogReader, Snapshot, SnapshotStore
from cart_pipeline.reconcile import snapshot as codec
from cart_pipeline.reconcile.store import MANIFEST_KEY
from tests.pipeline.conftest import reset_pipeline_objects

pytestmark = pytest.mark.timeout(300)

TOPIC = "shopping_cart_events"
LOAD, RECONCILE = "cart_events_load", "cart_reconciliation"
#: This module's own snapshot topic, so other modules' snapshots never interfere.
SNAPSHOT_TOPIC = f"_snap_test_{uuid.uuid4().hex[:8]}"
#: Every load of this module, in order: the truth.
LOADS: list[GeneratorConfig] = []


def run_config(events: int, seed: int, **reconcile: Any) -> dict:
    LOADS.append(GeneratorConfig(n_events=events, seed=seed, n_customers=60, n_items=25))
    return {
        "ops": {
            LOAD: {"config": {"events": events, "seed": seed, "customers": 60, "items": 25}},
            RECONCILE: {"config": {"lag_timeout_s": 60, "snapshot_topic": SNAPSHOT_TOPIC,
                                   "full_every_runs": 0, "full_after_hours": 0, **reconcile}},
        }
    }  # fmt: skip


def reconcile_only(**reconcile: Any) -> dict:
    config = {"lag_timeout_s": 60, "snapshot_topic": SNAPSHOT_TOPIC, "full_every_runs": 0,
              "full_after_hours": 0, **reconcile}  # fmt: skip
    return {"ops": {RECONCILE: {"config": config}}}


def materialize(
    resources: dict, instance: dg.DagsterInstance, config: dict, selection: list | None
) -> dg.ExecuteInJobResult:
    return dg.materialize(
        ASSETS, resources=resources, run_config=config, instance=instance,
        selection=selection, raise_on_error=False,
    )  # fmt: skip


def report(result: dg.ExecuteInJobResult) -> dict[str, Any]:
    events = result.asset_materializations_for_node(RECONCILE)
    assert events, "the reconciliation was not materialized"
    return {k: v.value for k, v in events[-1].metadata.items()}


def truth() -> dict[tuple[str, str], int]:
    totals: dict[tuple[str, str], int] = {}
    for config in LOADS:
        for key, qty in generate(config).expected_totals.items():
            totals[key] = totals.get(key, 0) + qty
    return totals


def stored(settings: KafkaSettings) -> Snapshot:
    with LogReader(settings) as reader:
        return SnapshotStore(settings, TOPIC, SNAPSHOT_TOPIC).load(reader)


def end_offsets(settings: KafkaSettings) -> dict[int, int]:
    return Topics(settings).end_offsets(TOPIC)


@pytest.fixture(scope="module")
def settings(kafka_bootstrap: str) -> KafkaSettings:
    return KafkaSettings(kafka_bootstrap, timeout_s=20)


@pytest.fixture(scope="module", autouse=True)
def clean_slate(kafka_bootstrap: str, ksqldb_url: str) -> None:
    reset_pipeline_objects(kafka_bootstrap, ksqldb_url)


def test_first_run_is_full_and_persists_the_truth(
    resources: dict, instance: dg.DagsterInstance, settings: KafkaSettings
) -> None:
    result = materialize(resources, instance, run_config(3000, seed=21), None)
    assert result.success
    meta = report(result)
    assert meta["status"] == "match" and meta["mode"] == "full"
    assert meta["mode_reason"] == "full: no snapshot (no snapshot topic yet)"
    assert meta["events_read"] == meta["events_total"] == 3000
    assert meta["snapshot_persisted"] is True
    assert meta["snapshot_written"] == f"base ({len(truth())} keys)"
    snap = stored(settings)
    assert snap.totals == truth(), "the snapshot holds the generator's truth"
    assert snap.offsets == end_offsets(settings) and snap.records == 3000
    assert snap.runs_since_full == 0 and snap.query_id == meta["query_id"]


def test_one_percent_more_reads_only_the_new_events(
    resources: dict, instance: dg.DagsterInstance, settings: KafkaSettings
) -> None:
    before = stored(settings)
    result = materialize(resources, instance, run_config(30, seed=22), [LOAD, RECONCILE])
    assert result.success
    meta = report(result)
    assert meta["status"] == "match" and meta["mode"] == "incremental"
    assert meta["mode_reason"] == f"incremental from offsets {before.offsets}"
    assert meta["events_read"] == 30 and meta["events_total"] == 3030
    assert meta["served_comparison"] == "changelog since snapshot"
    # Only the keys the new events touched (plus rows ksqlDB re-emitted) were compared.
    assert 0 < meta["keys_compared"] <= 30 and meta["served_keys"] < len(truth())
    assert meta["start_offsets"] == {str(p): o for p, o in before.offsets.items()}
    assert meta["snapshot_age_s"] >= 0
    # Only the touched keys were written, as a delta on the base.
    assert meta["snapshot_written"] == f"delta ({meta['keys_compared']} keys)"
    assert meta["snapshot_segments"] == 2
    snap = stored(settings)
    assert snap.totals == truth() and snap.records == 3030
    assert snap.offsets == end_offsets(settings) and snap.runs_since_full == 1


def test_periodic_full_run(resources: dict, instance: dg.DagsterInstance) -> None:
    # One incremental run since the last full one: with "every 2 runs" this one is full.
    result = materialize(resources, instance, reconcile_only(full_every_runs=2), [RECONCILE])
    meta = report(result)
    assert meta["mode"] == "full" and meta["mode_reason"] == "full: periodic (every 2 runs)"
    assert meta["events_read"] == 3030 and meta["status"] == "match"
    assert meta["served_comparison"] == "pull query (all keys)"
    assert meta["keys_compared"] == len(truth())


def test_full_run_on_request(
    resources: dict, instance: dg.DagsterInstance, settings: KafkaSettings
) -> None:
    # Two worker processes: the one-partition topic is cut into two offset ranges.
    config = run_config(40, seed=23, mode="full", workers=2)
    result = materialize(resources, instance, config, [LOAD, RECONCILE])
    meta = report(result)
    assert meta["mode"] == "full" and meta["mode_reason"] == "full: requested (mode=full)"
    assert meta["events_read"] == 3070 and meta["status"] == "match"
    assert meta["snapshot_written"] == f"base ({len(truth())} keys)"
    assert stored(settings).totals == truth()


def test_corrupt_snapshot_falls_back_to_full(
    resources: dict, instance: dg.DagsterInstance, settings: KafkaSettings
) -> None:
    producer = Producer(settings.producer_config())
    producer.produce(SNAPSHOT_TOPIC, b'{"version": 1, "offsets": ', MANIFEST_KEY)
    assert producer.flush(20) == 0
    result = materialize(resources, instance, run_config(30, seed=24), [LOAD, RECONCILE])
    assert result.success
    meta = report(result)
    assert meta["mode"] == "full" and meta["status"] == "match"
    assert meta["mode_reason"].startswith("full: snapshot corrupt (unreadable manifest")
    assert meta["events_read"] == 3100
    assert meta["snapshot_persisted"] is True and stored(settings).totals == truth()
    # ...and the next run is incremental again.
    meta = report(materialize(resources, instance, reconcile_only(), [RECONCILE]))
    assert meta["mode"] == "incremental" and meta["events_read"] == 0
    assert meta["status"] == "match"


def test_corrupt_delta_falls_back_to_full(
    resources: dict, instance: dg.DagsterInstance, settings: KafkaSettings
) -> None:
    """A damaged delta is found while the new events are being recomputed: full run."""
    meta = report(materialize(resources, instance, run_config(30, seed=27), [LOAD, RECONCILE]))
    assert meta["mode"] == "incremental" and meta["snapshot_written"].startswith("delta")
    with LogReader(settings) as reader:
        end = reader.state(SNAPSHOT_TOPIC).ends[0]
        records = list(reader.read(SNAPSHOT_TOPIC, 0, 0, end))
    manifest = next(m for m in reversed(records) if m.key() == MANIFEST_KEY)
    doc = orjson.loads(manifest.value() or b"")
    last = doc["segments"][-1]
    delta = next(m for m in records if m.offset() == last["first"])
    # The same delta again with one total changed, and a manifest naming that copy (its own
    # checksum right): only the chunk's digest can tell.
    damaged = (delta.value() or b"").replace(b'"t":[', b'"t":[1', 1)
    assert damaged != delta.value()
    producer = Producer(settings.producer_config())
    producer.produce(SNAPSHOT_TOPIC, damaged, delta.key())
    assert producer.flush(20) == 0
    last["first"] = last["last"] = Topics(settings).end_offsets(SNAPSHOT_TOPIC)[0] - 1
    body = {k: v for k, v in doc.items() if k != "checksum"}
    producer.produce(SNAPSHOT_TOPIC, codec.encode_manifest(body), MANIFEST_KEY)
    assert producer.flush(20) == 0

    meta = report(materialize(resources, instance, reconcile_only(), [RECONCILE]))
    assert meta["mode"] == "full" and meta["status"] == "match"
    assert meta["mode_reason"].startswith(
        "full: snapshot corrupt (checksum mismatch (chunks delta/"
    )
    assert meta["snapshot_written"].startswith("base") and stored(settings).totals == truth()
    meta = report(materialize(resources, instance, reconcile_only(), [RECONCILE]))
    assert meta["mode"] == "incremental" and meta["status"] == "match"


def test_changelog_path_catches_a_wrong_served_row(
    resources: dict, instance: dg.DagsterInstance, settings: KafkaSettings, ksqldb_url: str
) -> None:
    """A row ksqlDB emitted with a wrong total is compared even without a new event for it."""
    manifest_before = stored(settings)
    key = next(iter(sorted(truth())))
    with KsqlClient(ksqldb_url) as ksql:
        sink = ksql.describe("CURRENT_SHOPPING_CART").topic
    producer = Producer(settings.producer_config())
    producer.produce(
        sink, orjson.dumps({"TOTAL_QTY": truth()[key] + 1000}),
        orjson.dumps({"CUSTOMER": key[0], "ITEM": key[1]}),
    )  # fmt: skip
    assert producer.flush(20) == 0
    result = materialize(resources, instance, reconcile_only(), [RECONCILE])
    assert not result.success, "a mismatch fails the blocking check"
    meta = report(result)
    assert meta["mode"] == "incremental" and meta["status"] == "mismatch"
    assert meta["served_comparison"] == "changelog since snapshot"
    assert meta["mismatches"] == meta["different_totals"] == 1
    assert meta["snapshot_persisted"] is False
    assert meta["snapshot_note"] == "not persisted: mismatch"
    assert stored(settings) == manifest_before, "nothing persisted after a mismatch"


def test_view_reading_from_latest_is_caught_on_the_incremental_path(
    resources: dict, instance: dg.DagsterInstance, settings: KafkaSettings, ksqldb_url: str
) -> None:
    before = stored(settings)
    with KsqlClient(ksqldb_url) as ksql:
        ksql.execute("DROP TABLE current_shopping_cart DELETE TOPIC;")
        ksql.execute(
            "SET 'auto.offset.reset'='latest';\n"
            "CREATE TABLE current_shopping_cart WITH (KEY_FORMAT='JSON') AS SELECT customer, "
            "item, SUM(qty) as total_qty FROM shopping_cart_events GROUP BY customer, item "
            "EMIT CHANGES;"
        )
        # Wait until the new query reads new events (see test_end_to_end for why canaries).
        deadline = time.monotonic() + 60
        canaries = 0
        while ["canary", "probe"] not in [
            list(r) for r in ksql.query("SELECT CUSTOMER, ITEM FROM CURRENT_SHOPPING_CART;").rows
        ]:
            assert time.monotonic() < deadline, "the re-created table never read new events"
            ksql.insert_values("SHOPPING_CART_EVENTS", {"CUSTOMER": "canary", "ITEM": "probe",
                                                        "QTY": 1})  # fmt: skip
            canaries += 1
            time.sleep(1)
    result = materialize(resources, instance, run_config(30, seed=25), [LOAD, RECONCILE])
    assert not result.success
    meta = report(result)
    assert meta["mode"] == "incremental", "the log side still folds onto the snapshot"
    assert meta["events_read"] == 30 + canaries
    assert meta["served_comparison"] == "pull query (all keys)"
    assert "the table's query changed since the snapshot" in meta["served_reason"]
    assert meta["status"] == "mismatch" and meta["missing_in_ksqldb"] > 0
    assert meta["snapshot_persisted"] is False and stored(settings) == before


def test_snapshot_older_than_retention_falls_back_to_full(
    resources: dict, instance: dg.DagsterInstance, settings: KafkaSettings
) -> None:
    snap = stored(settings)
    ends = end_offsets(settings)
    cut = {p: snap.offsets[p] + 5 for p in ends}
    assert all(cut[p] < ends[p] for p in ends)
    admin = AdminClient(settings.client_config())
    futures = admin.delete_records([TopicPartition(TOPIC, p, o) for p, o in cut.items()],
                                   request_timeout=20)  # fmt: skip
    for future in futures.values():
        future.result(timeout=20)
    meta = report(materialize(resources, instance, reconcile_only(), [RECONCILE]))
    assert meta["mode"] == "full"
    assert meta["mode_reason"] == (
        f"full: snapshot older than retention: partition 0 now starts at {cut[0]}, "
        f"after the snapshot's offset {snap.offsets[0]}"
    )
    # Only what is left is read (offsets count transaction markers too, records do not).
    assert 0 < meta["events_read"] == meta["events_total"] <= sum(ends[p] - cut[p] for p in ends)
    # The deleted events are gone from the log, not from ksqlDB's sums: a real difference.
    assert meta["status"] == "mismatch" and meta["snapshot_persisted"] is False
