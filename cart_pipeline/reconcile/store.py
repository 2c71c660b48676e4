"""Kafka I/O of incremental reconciliation: topic state, offset-range reads, the snapshot topic.

The snapshot lives in a compacted Kafka topic (default ``_cart_reconcile_snapshot.<topic>``),
not on local disk: Dagster runs may execute on different machines, and a topic works the same
on the embedded broker, docker-compose and Confluent Cloud. One snapshot is one transaction —
its chunk records (keys ``chunk/<n>``), then the manifest (key ``manifest``) naming the chunks'
offset range and a checksum — so a reader never sees half a snapshot, and compaction keeps
the latest of each key, which bounds the topic to about one snapshot.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from types import TracebackType

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
from cart_pipeline.reconcile.snapshot import (
    Snapshot,
    SnapshotCorrupt,
    SnapshotUnusable,
    TopicState,
    decode_manifest,
    decode_snapshot,
    encode_chunks,
    encode_manifest,
    manifest_body,
)

MANIFEST_KEY = b"manifest"
CHUNK_PREFIX = b"chunk/"
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

    def load(self, reader: LogReader) -> Snapshot:
        """The latest snapshot; raises SnapshotUnusable ("no snapshot", corrupt, version)."""
        try:
            state = reader.state(self.topic)
        except TopicNotFound:
            raise SnapshotUnusable("no snapshot (no snapshot topic yet)") from None
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
        first, last, n = manifest["chunk_first"], manifest["chunk_last"], manifest["chunks"]
        chunks: dict[int, bytes] = {}
        if n:
            if not (isinstance(first, int) and isinstance(last, int) and low <= first <= last):
                raise SnapshotCorrupt(f"chunk offsets {first!r}..{last!r} are not in the topic")
            for msg in reader.read(self.topic, 0, first, last + 1):
                key = msg.key() or b""
                if key.startswith(CHUNK_PREFIX):
                    suffix = key[len(CHUNK_PREFIX) :]
                    index = int(suffix) if suffix.isdigit() else -1
                    if index in chunks or not 0 <= index < n:
                        raise SnapshotCorrupt(f"unexpected chunk record {key!r}")
                    chunks[index] = msg.value() or b""
        return decode_snapshot(manifest, [chunks[i] for i in sorted(chunks)])

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

    def save(self, snapshot: Snapshot) -> SavedSnapshot:
        """Write ``snapshot`` in one transaction: chunks, then the manifest naming them."""
        self.ensure_topic()
        chunks = encode_chunks(snapshot.totals)
        keys = [CHUNK_PREFIX + str(n).encode() for n in range(len(chunks))]
        # A stable id per source topic: a concurrent writer is fenced, never interleaved.
        txn_id = f"cart_pipeline-reconcile-snapshot.{self.source_topic}"
        with TransactionalProducer(
            self.settings, self.topic, transactional_id=txn_id, **{"linger.ms": 5}
        ) as txn:
            first = last = -1
            if chunks:
                txn.produce(keys, chunks)
                txn.flush()
                written = txn.tracker.ranges()[0]
                first, last = written.first, written.last
            body = manifest_body(snapshot, len(chunks), first, last)
            txn.produce([MANIFEST_KEY], [encode_manifest(body, chunks)])
            ranges = txn.commit()
        return SavedSnapshot(self.topic, ranges[0].last, len(chunks), sum(map(len, chunks)))
