"""The independent batch recomputation: fold the event log into per-(customer, item) totals.

It reads the topic itself (read_committed, partition by partition, up to fixed end offsets),
applies ksqlDB's deserialization rules (``decode.py``) and sums like ksqlDB's ``SUM(INT)``:
NULL quantities are skipped, a NULL customer or item drops the row, sums wrap at 32 bits.
It shares no code with any ksqlDB implementation, so it can catch their mistakes.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

from confluent_kafka import Consumer, KafkaException, Message, TopicPartition

from cart_pipeline.kafka_io import KafkaSettings, KafkaUnavailable
from cart_pipeline.kafka_io.diagnostics import ClientErrors
from cart_pipeline.reconcile.decode import wrap_int32
from cart_pipeline.reconcile.fast_decode import NULL_KEY, TOMBSTONE, fold_batch, fold_record

CartKey = tuple[str, str]
BATCH = 10_000
#: consume() returns at BATCH records or this timeout. Short, because the read of a partition
#: ends with an empty poll: trailing transaction markers are offsets but never records.
POLL_TIMEOUT_S = 0.05
#: Fold whole batches with ``fast_decode.fold_batch`` (False: the per-record loop below, the
#: reference it is tested against). ``recompute_partition(fast_path=...)`` overrides it.
FAST_PATH = True


@dataclass
class Recomputation:
    """Totals as of ``end_offsets`` plus what was read and what ksqlDB would have rejected."""

    totals: dict[CartKey, int] = field(default_factory=dict)
    end_offsets: dict[int, int] = field(default_factory=dict)
    #: Per partition, one past the last record actually read (control records such as
    #: transaction markers occupy offsets too, so this can be below the end offset).
    data_ends: dict[int, int] = field(default_factory=dict)
    records: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    tombstones: int = 0
    null_keys: int = 0
    elapsed_s: float = 0.0

    @property
    def rejected_total(self) -> int:
        return sum(self.rejected.values())

    def merge(self, other: Recomputation) -> None:
        """Fold in the result of another partition, or of another offset range of one."""
        for key, value in other.totals.items():
            self.totals[key] = wrap_int32(self.totals.get(key, 0) + value)
        # Offset ranges of one partition: the furthest range's ends are the partition's.
        for partition, end in other.end_offsets.items():
            self.end_offsets[partition] = max(end, self.end_offsets.get(partition, 0))
        for partition, data_end in other.data_ends.items():
            self.data_ends[partition] = max(data_end, self.data_ends.get(partition, 0))
        self.records += other.records
        self.rejected.update(other.rejected)
        self.tombstones += other.tombstones
        self.null_keys += other.null_keys


def recompute_partition(
    settings: KafkaSettings,
    topic: str,
    partition: int,
    end: int,
    start: int = 0,
    totals: dict[CartKey, int] | None = None,
    idle_timeout_s: float | None = None,
    fast_path: bool | None = None,
) -> Recomputation:
    """Read ``[start, end)`` of one partition and fold it into ``totals`` (new dict if None).

    ``end`` comes from a read_committed watermark (the last stable offset), so every offset
    before it is decided; the read ends once the consumer's position reaches it. If no record
    arrives for ``idle_timeout_s`` (default: the Kafka timeout), the read fails rather than hangs.
    """
    result = Recomputation(
        totals={} if totals is None else totals,
        end_offsets={partition: end},
        data_ends={partition: start},
    )
    if end <= start:
        return result
    idle_limit = settings.timeout_s if idle_timeout_s is None else idle_timeout_s
    fast = FAST_PATH if fast_path is None else fast_path
    config = settings.consumer_config(
        "cart_pipeline-recompute",
        **{"fetch.max.bytes": 52_428_800, "max.partition.fetch.bytes": 10_485_760},
    )
    errors = ClientErrors.of(config)  # consume() serves it: why no record arrives, if known
    consumer = Consumer(config)
    acc = result.totals
    rejected = result.rejected
    records = tombstones = null_keys = 0
    data_end = start
    try:
        consumer.assign([TopicPartition(topic, partition, start)])
        position = start
        last_progress = time.monotonic()
        while position < end:
            batch = consumer.consume(num_messages=BATCH, timeout=POLL_TIMEOUT_S)
            pending = batch
            if (
                fast
                and batch
                and (batch[-1].offset() or 0) < end
                and list(map(Message.error, batch)).count(None) == len(batch)
            ):
                # The common batch (no error, wholly before the end): decoded in C, with
                # ksqlDB's rules record by record only for non-canonical values.
                records += len(batch)
                data_end = (batch[-1].offset() or 0) + 1
                more_tombstones, more_null_keys = fold_batch(
                    list(map(Message.value, batch)), acc, rejected
                )
                tombstones += more_tombstones
                null_keys += more_null_keys
                pending = []
            for msg in pending:
                if msg.error() is not None:
                    raise KafkaUnavailable(
                        f"read failed: {msg.error()}", topic=topic, partition=partition
                    )
                offset = msg.offset() or 0
                if offset >= end:
                    position = end
                    break
                records += 1
                data_end = offset + 1
                outcome = fold_record(msg.value(), acc, rejected)
                if outcome == TOMBSTONE:
                    tombstones += 1
                elif outcome == NULL_KEY:
                    null_keys += 1
            if batch:
                last_progress = time.monotonic()
            position = max(
                position, consumer.position([TopicPartition(topic, partition)])[0].offset
            )
            if not batch and (errors.definitive or time.monotonic() - last_progress > idle_limit):
                # A refused login or TLS handshake is final: fail now, not at the idle limit.
                known = errors.failure(topic=topic, partition=partition)
                if known is not None:
                    raise known
                cause = errors.cause()
                raise KafkaUnavailable(
                    f"no records for {idle_limit:.0f}s while reading up to offset {end}"
                    + (f"; last error: {cause}" if cause else ""),
                    topic=topic, partition=partition, offset=position,
                )  # fmt: skip
    except KafkaException as exc:
        raise KafkaUnavailable(f"read failed: {exc}", topic=topic, partition=partition) from None
    finally:
        consumer.close()
    result.records, result.tombstones, result.null_keys = records, tombstones, null_keys
    result.data_ends[partition] = data_end
    return result


def recompute(
    settings: KafkaSettings,
    topic: str,
    end_offsets: Mapping[int, int],
    start_offsets: Mapping[int, int] | None = None,
    base: Mapping[CartKey, int] | None = None,
    workers: int | None = None,
) -> Recomputation:
    """All partitions folded onto ``base`` totals (a snapshot) if given.

    ``workers`` > 1 sums partitions, or offset ranges of them, in that many worker processes
    (``parallel.py``); 1 reads them one after another in this process. None picks one worker
    per ``parallel.MIN_PARALLEL_OFFSETS`` offsets to read, at most one per CPU.
    """
    from cart_pipeline.reconcile import parallel  # imports this module

    if workers is not None and workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    started = time.monotonic()
    total = Recomputation(totals=dict(base or {}))
    slices = parallel.to_slices(end_offsets, start_offsets)
    n = parallel.default_workers(slices) if workers is None else workers
    parallel.recompute_parallel(settings, topic, end_offsets, start_offsets, n, total)
    total.elapsed_s = time.monotonic() - started
    return total
