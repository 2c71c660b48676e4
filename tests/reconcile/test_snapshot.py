"""The reconciliation snapshot: its codec, its topic on a real broker, and when it is unusable."""

from __future__ import annotations

import dataclasses
import json

import orjson
import pytest
from confluent_kafka import Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from cart_pipeline.kafka_io import KafkaSettings, Topics
from cart_pipeline.reconcile import snapshot as codec
from cart_pipeline.reconcile import store as store_module
from cart_pipeline.reconcile.snapshot import (
    Snapshot,
    SnapshotCorrupt,
    SnapshotUnusable,
    unusable_reason,
)
from cart_pipeline.reconcile.store import MANIFEST_KEY, LogReader, SnapshotStore

pytestmark = pytest.mark.timeout(120)


def make_snapshot(topic: str, keys: int = 10, offsets: dict[int, int] | None = None) -> Snapshot:
    totals = {(f"customer {n % 7}", f"item {n}"): n - 5 for n in range(keys)}
    # Names the codec must carry exactly: quotes, pipes, newlines, non-ASCII, a lone surrogate
    # (stdlib json decodes one from "\ud800"; orjson refuses to encode it).
    totals.update({('Zoë "Q" | O\'Brien', "a\nb"): 2147483647, ("\ud800", "x"): -2147483648})
    return Snapshot(
        source_topic=topic, topic_id="id-1", offsets=offsets or {0: 40, 1: 2},
        data_ends={0: 39, 1: 1}, totals=totals, records=42, rejected={"not_json": 3},
        tombstones=1, null_keys=2, created_at=1000.0, last_full_at=900.0, runs_since_full=3,
        query_id="CTAS_X_1", sink_topic="X", sink_topic_id="id-2", sink_offsets={0: 7},
    )  # fmt: skip


@pytest.fixture
def settings(kafka_bootstrap: str) -> KafkaSettings:
    return KafkaSettings(kafka_bootstrap, timeout_s=20)


def _produce(settings: KafkaSettings, topic: str, key: bytes, value: bytes) -> None:
    producer = Producer(settings.producer_config())
    producer.produce(topic, value, key)
    assert producer.flush(20) == 0


def test_round_trip_through_the_topic(settings: KafkaSettings, unique_name: str) -> None:
    store = SnapshotStore(settings, unique_name, topic=f"_snap_{unique_name}")
    first, second = make_snapshot(unique_name), make_snapshot(unique_name, keys=20_000)
    second.offsets = {0: 99, 1: 3}
    store.save(first)
    saved = store.save(second)
    assert saved.chunks > 1, "20k keys take several chunk records"
    with LogReader(settings) as reader:
        loaded = store.load(reader)
    assert loaded == second, "the latest snapshot, exactly as saved"
    assert loaded.totals[("\ud800", "x")] == -2147483648


def test_empty_snapshot_round_trips(settings: KafkaSettings, unique_name: str) -> None:
    store = SnapshotStore(settings, unique_name, topic=f"_snap_{unique_name}")
    empty = dataclasses.replace(make_snapshot(unique_name), totals={})
    assert store.save(empty).chunks == 0
    with LogReader(settings) as reader:
        assert store.load(reader) == empty


def test_missing_snapshot(settings: KafkaSettings, unique_name: str) -> None:
    store = SnapshotStore(settings, unique_name, topic=f"_snap_{unique_name}")
    with LogReader(settings) as reader:
        with pytest.raises(SnapshotUnusable, match="no snapshot"):
            store.load(reader)
        store.ensure_topic()
        _produce(settings, store.topic, b"chunk/0", b"[]")  # chunks, but no manifest
        with pytest.raises(SnapshotUnusable, match=r"^no snapshot$"):
            store.load(reader)


def test_garbage_after_the_snapshot_is_corrupt(settings: KafkaSettings, unique_name: str) -> None:
    store = SnapshotStore(settings, unique_name, topic=f"_snap_{unique_name}")
    store.save(make_snapshot(unique_name))
    _produce(settings, store.topic, MANIFEST_KEY, b"\x00not json")
    with LogReader(settings) as reader, pytest.raises(SnapshotCorrupt, match="unreadable"):
        store.load(reader)


def test_forged_manifest_fails_the_checksum(settings: KafkaSettings, unique_name: str) -> None:
    store = SnapshotStore(settings, unique_name, topic=f"_snap_{unique_name}")
    store.save(make_snapshot(unique_name))
    with LogReader(settings) as reader:
        state = reader.state(store.topic)
        manifest = next(
            m for m in reader.read(store.topic, 0, 0, state.ends[0]) if m.key() == MANIFEST_KEY
        )
        doc = orjson.loads(manifest.value() or b"")
        doc["offsets"]["0"] = 10**6  # a plausible-looking lie
        _produce(settings, store.topic, MANIFEST_KEY, orjson.dumps(doc))
        with pytest.raises(SnapshotCorrupt, match="checksum mismatch"):
            store.load(reader)
        doc["version"] = 99
        _produce(settings, store.topic, MANIFEST_KEY, orjson.dumps(doc))
        with pytest.raises(SnapshotUnusable, match="version 99"):
            store.load(reader)


def _segment(prefix: str, first: int, chunks: list[bytes], keys: int) -> codec.Segment:
    last = first + max(0, len(chunks) - 1)
    return codec.Segment(prefix, first, last, len(chunks), keys, codec.segment_digest(chunks))


def test_codec_detects_damaged_chunks() -> None:
    snap = make_snapshot("t", keys=50)
    chunks = codec.encode_chunks(snap.totals)
    body = codec.manifest_body(snap, [_segment("chunk/", 5, chunks, len(snap.totals))])
    manifest = codec.decode_manifest(codec.encode_manifest(body))
    assert codec.decode_snapshot(manifest, [chunks]) == snap
    damaged = [chunks[0].replace(b"-5", b"-6", 1), *chunks[1:]]
    with pytest.raises(SnapshotCorrupt, match="checksum"):
        codec.decode_snapshot(manifest, [damaged])
    with pytest.raises(SnapshotCorrupt, match="chunks found"):
        codec.decode_snapshot(manifest, [chunks + chunks])
    with pytest.raises(SnapshotCorrupt, match="segments found"):
        codec.decode_snapshot(manifest, [chunks, chunks])
    # A consistent checksum over content that is not totals is still refused.
    for bad in (b'[["only two", 1]]', b'{"c": ["a"], "i": ["b"], "ci": [-1], "ii": [0], "t": [1]}',
                b'{"c": ["a"], "i": ["b"], "ci": [0], "ii": [0], "t": [true]}',
                b'{"c": ["a"], "i": ["b"], "ci": [0], "ii": [1], "t": [1]}'):  # fmt: skip
        one = dataclasses.replace(snap, totals={("a", "b"): 1})
        body = codec.manifest_body(one, [_segment("chunk/", 0, [bad], 1)])
        with pytest.raises(SnapshotCorrupt, match="malformed"):
            codec.decode_snapshot(codec.decode_manifest(codec.encode_manifest(body)), [[bad]])


def test_codec_applies_deltas_in_order() -> None:
    snap = make_snapshot("t", keys=30)
    base = codec.encode_chunks(snap.totals)
    first = codec.encode_chunks({("customer 1", "item 1"): 100, ("new", "key"): 1})
    second = codec.encode_chunks({("customer 1", "item 1"): 7})
    expected = {**snap.totals, ("customer 1", "item 1"): 7, ("new", "key"): 1}
    segments = [_segment("chunk/", 3, base, len(snap.totals)), _segment("delta/0/", 20, first, 2),
                _segment("delta/1/", 40, second, 1)]  # fmt: skip
    body = codec.manifest_body(dataclasses.replace(snap, totals=expected), segments)
    loaded = codec.decode_snapshot(codec.decode_manifest(codec.encode_manifest(body)),
                                   [base, first, second])  # fmt: skip
    assert loaded.totals == expected and loaded.segments == segments
    # Segments out of order (a delta before its base) are refused, not applied.
    backwards = codec.manifest_body(snap, [segments[1], segments[0]])
    with pytest.raises(SnapshotCorrupt, match="not a range after"):
        codec.decode_snapshot(codec.decode_manifest(codec.encode_manifest(backwards)),
                              [first, base])  # fmt: skip


def test_delta_chain_through_the_topic(
    settings: KafkaSettings, unique_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Incremental saves write only the changed keys; loads see base + deltas, exactly; the
    chain starts over with a new base at its length or share limit."""
    monkeypatch.setattr(store_module, "MAX_DELTAS", 3)
    store = SnapshotStore(settings, unique_name, topic=f"_snap_{unique_name}")
    current = make_snapshot(unique_name, keys=2_000)
    saved = store.save(current)
    assert (saved.kind, saved.keys, saved.segments) == ("base", 2_002, 1)
    kinds = []
    for n in range(5):
        with LogReader(settings) as reader:
            loaded = store.load(reader)
        assert loaded == current and loaded.totals == current.totals
        changed = {(f"customer {n % 7}", f"item {m}") for m in range(n, 2_000, 7 * 25)}
        changed |= {(f"run {n}", "brand new")}
        totals = dict(current.totals)
        totals.update({key: n * 1000 + len(key[1]) for key in changed})
        current = dataclasses.replace(loaded, totals=totals, records=loaded.records + 1)
        saved = store.save(current, base=loaded, changed=changed)
        kinds.append((saved.kind, saved.segments))
        if saved.kind == "delta":
            assert saved.keys == len(changed) < 20
    # Base, then 3 deltas (MAX_DELTAS), then a new base and a delta on it.
    assert kinds == [("delta", 2), ("delta", 3), ("delta", 4), ("base", 1), ("delta", 2)]
    with LogReader(settings) as reader:
        assert store.load(reader) == current

    # More changed keys than DELTA_MAX_SHARE of the base: a new base instead.
    with LogReader(settings) as reader:
        loaded = store.load(reader)
    everything = set(loaded.totals)
    assert store.save(loaded, base=loaded, changed=everything).kind == "base"
    with LogReader(settings) as reader:
        assert store.load(reader) == loaded


def test_damaged_delta_is_corrupt(settings: KafkaSettings, unique_name: str) -> None:
    store = SnapshotStore(settings, unique_name, topic=f"_snap_{unique_name}")
    store.save(make_snapshot(unique_name, keys=100))
    with LogReader(settings) as reader:
        loaded = store.load(reader)
    changed = {("customer 1", "item 1")}
    store.save(dataclasses.replace(loaded, totals={**loaded.totals, ("customer 1", "item 1"): 5}),
               base=loaded, changed=changed)  # fmt: skip
    with LogReader(settings) as reader:
        state = reader.state(store.topic)
        records = list(reader.read(store.topic, 0, 0, state.ends[0]))
    delta = next(m for m in records if (m.key() or b"").startswith(b"delta/0/"))
    manifest = records[-1]
    assert manifest.key() == MANIFEST_KEY
    # The same records again, the delta's bytes altered: the manifest names the new offsets
    # (so only the content is wrong).
    doc = orjson.loads(manifest.value() or b"")
    _produce(settings, store.topic, delta.key() or b"", (delta.value() or b"").replace(b"5", b"6"))
    with LogReader(settings) as reader:
        end = reader.state(store.topic).ends[0]
    doc["segments"][1]["first"] = doc["segments"][1]["last"] = end - 1
    body = {k: v for k, v in doc.items() if k != "checksum"}
    _produce(settings, store.topic, MANIFEST_KEY, codec.encode_manifest(body))
    with LogReader(settings) as reader, pytest.raises(SnapshotCorrupt, match="checksum mismatch"):
        store.load(reader)
    with pytest.raises(SnapshotCorrupt, match="lacks"):
        codec.decode_manifest(json.dumps({"version": codec.VERSION}).encode())


def test_chunks_stay_below_the_record_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(codec, "CHUNK_MAX_BYTES", 2_000)
    totals = {(f"c{n}" * 20, f"i{n}"): n for n in range(300)}
    chunks = codec.encode_chunks(totals)
    assert len(chunks) > 10 and all(len(c) <= 2_000 for c in chunks)
    decoded: dict[tuple[str, str], int] = {}
    for chunk in chunks:
        codec._decode_chunk(chunk, decoded)
    assert decoded == totals
    with pytest.raises(ValueError, match="too large"):
        codec.encode_chunks({("x" * 5_000, "y"): 1})


def test_validity_against_the_topic_as_it_is(settings: KafkaSettings, unique_name: str) -> None:
    Topics(settings).ensure(unique_name, 2)
    producer = Producer(settings.producer_config())
    for n in range(20):
        producer.produce(unique_name, b"{}", f"k{n}".encode(), partition=n % 2)
    assert producer.flush(20) == 0
    with LogReader(settings) as reader:
        state = reader.state(unique_name)
        assert state.ends == {0: 10, 1: 10} and state.starts == {0: 0, 1: 0}
        snap = make_snapshot(unique_name, offsets={0: 6, 1: 10})
        snap.topic_id = state.topic_id
        assert unusable_reason(snap, state) is None
        beyond = dataclasses.replace(snap, offsets={0: 11, 1: 10})
        assert "beyond the end" in (unusable_reason(beyond, state) or "")
        other = dataclasses.replace(snap, topic_id="another")
        assert "topic id changed" in (unusable_reason(other, state) or "")
        fewer = dataclasses.replace(snap, offsets={0: 6})
        assert "partition count" in (unusable_reason(fewer, state) or "")

        # Retention: the log start moves past the snapshot's offset on partition 0.
        admin = AdminClient(settings.client_config())
        futures = admin.delete_records([TopicPartition(unique_name, 0, 8)], request_timeout=20)
        for future in futures.values():
            future.result(timeout=20)
        state = reader.state(unique_name)
        assert state.starts[0] == 8
        assert "older than retention" in (unusable_reason(snap, state) or "")
