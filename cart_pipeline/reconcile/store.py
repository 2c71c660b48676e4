"""Kafka I/O of incremental reconciliation: topic state, offset-range reads, the snapshot topic.

The snapshot lives in a compacted Kafka topic (default ``_cart_reconcile_snapshot.<topic>``),
not on local disk: Dagster runs may execute on different machines, and a topic works the same
on the embedded broker, docker-compose and Confluent Cloud. One save is one transaction —
chunk records, then the manifest (key ``manifest``) naming every segment's offset range and a
checksum — so a reader never sees half a snapshot.

A full save writes the base (keys ``chunk/<n>``); an incremental run that starts from a loaded
snapshot writes only a delta of the keys it changed (keys ``delta/<slot>/<n>``, slot = its
place in the chain) and a manifest naming the base and every delta so far. A new base is
written when the chain reaches ``MAX_DELTAS`` or its deltas hold more keys than
``DELTA_MAX_SHARE`` of the base (loading would then cost more than a base does). Compaction
keeps the latest record of each key; keys are reused only by a later base or chain, after
the manifest that named the old records was superseded — so the topic stays bounded at about
one base and one chain.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from confluent_kafka import (
    Consumer,
    IsolationLevel,
    KafkaError,
    KafkaException,
    Message,
    TopicCollection,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, NewTopic, OffsetSpec

from cart_pipeline.kafka_io import KafkaSettings, KafkaUnavailable, TopicNotFound
from cart_pipeline.kafka_io.transactional import TransactionalProducer
from cart_pipeline.reconcile.compare import CartKey
from cart_pipeline.reconcile.snapshot import (
    Segment,
    Snapshot,
    SnapshotCorrupt,
    SnapshotUnusable,
    TopicState,
    decode_manifest,
    decode_snapshot,
    encode_chunks,
    encode_manifest,
    manifest_body,
    manifest_segments,
    segment_digest,
    snapshot_header,
)

MANIFEST_KEY = b"manifest"
BASE_PREFIX = "chunk/"
#: Deltas a chain holds before a save writes a new base instead.
MAX_DELTAS = 16
#: A chain whose deltas hold more keys than this share of the base's gets a new base.
DELTA_MAX_SHARE = 0.5
#: consume() returns at its record count or this timeout; reads here are short, so keep the
#: wait for a partial batch short too (an idle partition still ends the read via position).
POLL_TIMEOUT_S = 0.01
#: Offsets read back from the end of the snapshot topic to find the manifest, first try:
#: normally the manifest and its transaction's commit marker are the last two.
MANIFEST_WINDOW = 4
#: The snapshot topic: compacted (latest per key survives) and rolled hourly, so compaction
#: can reclaim old snapshots (the active segment is never compacted).
SNAPSHOT_TOPIC_CONFIG = {"cleanup.policy": "compact", "segment.ms": "3600000"}


def snapshot_topic_for(source_topic: str) -> str:
    return f"_cart_reconcile_snapshot.{source_topic}"


class LogReader:
    """One admin client and one read_committed consumer, reused for every read of a run."""

    def __init__(self, settings: KafkaSettings) -> None:
        self.settings = settings
        self.admin = AdminClient(settings.client_config())
        self.consumer = Consumer(
            settings.consumer_config(
                "cart_pipeline-reconcile",
                # Bounded reads never long-poll: at a partition's end, answer at once.
                **{
                    "fetch.max.bytes": 52_428_800,
                    "max.partition.fetch.bytes": 10_485_760,
                    "fetch.wait.max.ms": 10,
                },
            )
        )

        #: Topics whose metadata this consumer holds (see ``read``).
        self._known: set[str] = set()

    def __enter__(self) -> LogReader:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType
    ) -> None:
        self.close()

    def close(self) -> None:
        self.consumer.close()

    def state(self, topic: str) -> TopicState:
        """The topic's id and, per partition, its log start and read_committed end offsets."""
        timeout = self.settings.timeout_s
        try:
            futures = self.admin.describe_topics(TopicCollection([topic]), request_timeout=timeout)
            description = futures[topic].result(timeout=timeout)
        except KafkaException as exc:
            if (
                exc.args
                and isinstance(exc.args[0], KafkaError)
                and (exc.args[0].code() == KafkaError.UNKNOWN_TOPIC_OR_PART)
            ):
                raise TopicNotFound("topic does not exist", topic=topic) from None
            raise KafkaUnavailable(f"could not describe topic: {exc}", topic=topic) from None
        # Two ListOffsets requests for all partitions (not one watermark query per partition,
        # ~100 ms each when the client has yet to learn the topic's leaders).
        partitions = sorted(p.id for p in description.partitions)
        try:
            starts = self._offsets(topic, partitions, OffsetSpec.earliest())
            ends = self._offsets(topic, partitions, OffsetSpec.latest())
        except KafkaException as exc:
            raise KafkaUnavailable(f"could not read offsets: {exc}", topic=topic) from None
        return TopicState(topic, str(description.topic_id), starts, ends)

    def _offsets(self, topic: str, partitions: list[int], spec: OffsetSpec) -> dict[int, int]:
        """Per partition: the log start (earliest) or the read_committed end (latest)."""
        request = {TopicPartition(topic, p): spec for p in partitions}
        futures = self.admin.list_offsets(
            request,
            isolation_level=IsolationLevel.READ_COMMITTED,
            request_timeout=self.settings.timeout_s,
        )
        return {
            tp.partition: int(future.result(timeout=self.settings.timeout_s).offset)
            for tp, future in futures.items()
        }

    def read(self, topic: str, partition: int, start: int, end: int) -> Iterator[Message]:
        """Committed records of ``[start, end)``; ``end`` must be a read_committed end offset.

        The read stops once the position reaches ``end`` (trailing transaction markers are
        offsets but not records); no record for the Kafka timeout fails it rather than hangs.
        """
        if end <= start:
            return
        consumer = self.consumer
        try:
            if topic not in self._known:
                # Assigned a topic it has no metadata for, a consumer that already read
                # another topic starts fetching only at its next metadata refresh: ~0.9 s
                # of empty polls, measured (most of an incremental run). Asking for the
                # topic's metadata first takes ~10 ms.
                consumer.list_topics(topic, timeout=self.settings.timeout_s)
                self._known.add(topic)
        except KafkaException as exc:
            raise KafkaUnavailable(f"no metadata: {exc}", topic=topic) from None
        consumer.assign([TopicPartition(topic, partition, start)])
        try:
            position, progress = start, time.monotonic()
            while position < end:
                # consume() waits for num_messages or the timeout: ask for little (no more
                # than the offsets left), so a call returns once that much has arrived.
                wanted = max(1, min(500, end - position))
                batch = consumer.consume(num_messages=wanted, timeout=POLL_TIMEOUT_S)
                for msg in batch:
                    if msg.error() is not None:
                        raise KafkaUnavailable(f"read failed: {msg.error()}",
                                               topic=topic, partition=partition)  # fmt: skip
                    if (msg.offset() or 0) >= end:
                        position = end
                        break
                    yield msg
                if batch:
                    progress = time.monotonic()
                tp = TopicPartition(topic, partition)
                position = max(position, consumer.position([tp])[0].offset)
                if not batch and time.monotonic() - progress > self.settings.timeout_s:
                    raise KafkaUnavailable(
                        f"no records for {self.settings.timeout_s:.0f}s reading up to {end}",
                        topic=topic, partition=partition, offset=position,
                    )  # fmt: skip
        except KafkaException as exc:
            raise KafkaUnavailable(f"read failed: {exc}", topic=topic,
                                   partition=partition) from None  # fmt: skip
        finally:
            consumer.unassign()


@dataclass(frozen=True)
class SavedSnapshot:
    topic: str
    manifest_offset: int
    chunks: int
    bytes: int
    #: "base" (every key) or "delta" (the changed keys, on the loaded snapshot's segments).
    kind: str = "base"
    #: Keys written by this save.
    keys: int = 0
    #: Segments the snapshot now has (1: a base alone).
    segments: int = 1


class SnapshotStore:
    """Load and save the snapshot of one source topic in its snapshot topic."""

    def __init__(
        self,
        settings: KafkaSettings,
        source_topic: str,
        topic: str | None = None,
        replication: int = 1,
    ) -> None:
        self.settings, self.source_topic = settings, source_topic
        self.topic = topic or snapshot_topic_for(source_topic)
        self.replication = replication
        #: The snapshot topic's partition count once ``load`` found it (save skips checks).
        self._partitions: int | None = None
        #: What ``load_manifest`` found: the manifest, and the topic's first offset then.
        self._manifest: dict[str, Any] | None = None
        self._low = 0

    def load(self, reader: LogReader) -> Snapshot:
        """The latest snapshot; raises SnapshotUnusable ("no snapshot", corrupt, version)."""
        self.load_manifest(reader)
        return self.load_totals(reader)

    def load_manifest(self, reader: LogReader) -> Snapshot:
        """The latest snapshot without its totals (``load_totals`` reads them next).

        Raises SnapshotUnusable ("no snapshot", corrupt manifest, version).
        """
        self._manifest = None
        try:
            state = reader.state(self.topic)
        except TopicNotFound:
            raise SnapshotUnusable("no snapshot (no snapshot topic yet)") from None
        self._partitions = len(state.ends)
        low, high = state.starts.get(0, 0), state.ends.get(0, 0)
        found: Message | None = None
        end, window = high, MANIFEST_WINDOW
        while found is None and end > low:
            start = max(low, end - window)
            for msg in reader.read(self.topic, 0, start, end):
                if msg.key() == MANIFEST_KEY:
                    found = msg
            end, window = start, window * 16
        if found is None:
            raise SnapshotUnusable("no snapshot")
        manifest = decode_manifest(found.value())
        header = snapshot_header(manifest)
        self._manifest, self._low = manifest, low
        return header

    def load_totals(self, reader: LogReader) -> Snapshot:
        """The whole snapshot whose manifest ``load_manifest`` read; raises SnapshotCorrupt."""
        if self._manifest is None:
            raise RuntimeError("load_totals() needs a successful load_manifest() first")
        manifest, low = self._manifest, self._low
        segments = manifest_segments(manifest)
        stored = [segment for segment in segments if segment.chunks]
        chunks: dict[Segment, dict[int, bytes]] = {segment: {} for segment in segments}
        if stored:
            first, last = stored[0].first, stored[-1].last
            if first < low:
                raise SnapshotCorrupt(f"chunk offsets from {first} are no longer in the topic")
            # One read over the base and the deltas; records between them (earlier manifests,
            # superseded deltas) belong to no segment's range and are passed over.
            for msg in reader.read(self.topic, 0, first, last + 1):
                offset = msg.offset() or 0
                segment = next((s for s in stored if s.first <= offset <= s.last), None)
                if segment is None:
                    continue
                key = (msg.key() or b"").decode("utf-8", "replace")
                suffix = key[len(segment.prefix) :] if key.startswith(segment.prefix) else ""
                index = int(suffix) if suffix.isdigit() else -1
                if index in chunks[segment] or not 0 <= index < segment.chunks:
                    raise SnapshotCorrupt(f"unexpected chunk record {key!r} at offset {offset}")
                chunks[segment][index] = msg.value() or b""
        found_chunks = [[c[i] for i in sorted(c)] for c in chunks.values()]
        return decode_snapshot(manifest, found_chunks)

    def ensure_topic(self) -> None:
        admin = AdminClient(self.settings.client_config())
        topic = NewTopic(self.topic, 1, self.replication, config=dict(SNAPSHOT_TOPIC_CONFIG))
        timeout = self.settings.timeout_s
        future = admin.create_topics([topic], operation_timeout=timeout, request_timeout=timeout)
        try:
            future[self.topic].result(timeout=timeout)
        except KafkaException as exc:
            if "TOPIC_ALREADY_EXISTS" not in str(exc):
                raise KafkaUnavailable(f"could not create topic: {exc}", topic=self.topic) from None

    def save(
        self,
        snapshot: Snapshot,
        base: Snapshot | None = None,
        changed: Collection[CartKey] = (),
    ) -> SavedSnapshot:
        """Write ``snapshot`` in one transaction: chunks, then the manifest naming them.

        With ``base`` (the loaded snapshot ``snapshot`` continues) and ``changed`` (every key
        whose total may differ from the base's), only those keys are written, as a delta on
        the base's segments — unless the chain is due a new base (see the module docstring).
        """
        if self._partitions is None:  # not read by this store: it may not exist yet
            self.ensure_topic()
        if base is not None and self._delta_fits(base, changed):
            prefix = f"delta/{len(base.segments) - 1}/"
            totals = {key: snapshot.totals[key] for key in changed}
            kept = list(base.segments)
        else:
            prefix, totals, kept = BASE_PREFIX, snapshot.totals, []
        chunks = encode_chunks(totals)
        keys = [f"{prefix}{n}".encode() for n in range(len(chunks))]
        # A stable id per source topic: a concurrent writer is fenced, never interleaved.
        txn_id = f"cart_pipeline-reconcile-snapshot.{self.source_topic}"
        with TransactionalProducer(
            self.settings,
            self.topic,
            transactional_id=txn_id,
            partitions=self._partitions,
            **{"linger.ms": 5},
        ) as txn:
            first = last = 0
            if chunks:
                txn.produce(keys, chunks)
                txn.flush()
                written = txn.tracker.ranges()[0]
                first, last = written.first, written.last
            written_segment = Segment(
                prefix, first, last, len(chunks), len(totals), segment_digest(chunks)
            )
            # An incremental run that changed nothing adds no (empty) delta to the chain.
            segments = kept if kept and not chunks else [*kept, written_segment]
            txn.produce([MANIFEST_KEY], [encode_manifest(manifest_body(snapshot, segments))])
            ranges = txn.commit()
        return SavedSnapshot(
            self.topic, ranges[0].last, len(chunks), sum(map(len, chunks)),
            kind="base" if prefix == BASE_PREFIX else "delta", keys=len(totals),
            segments=len(segments),
        )  # fmt: skip

    @staticmethod
    def _delta_fits(base: Snapshot, changed: Collection[CartKey]) -> bool:
        if not base.segments or len(base.segments) - 1 >= MAX_DELTAS:
            return False
        in_deltas = sum(s.keys for s in base.segments[1:]) + len(changed)
        return in_deltas <= DELTA_MAX_SHARE * base.segments[0].keys
