"""Load generated cart events into Kafka as one transaction: all of a load, or nothing.

Why one transaction: a load is the unit the reconciliation checks against
``expected_totals()``. If it dies half-way, read_committed readers (ksqlDB, the reconciler)
must see none of it, and a retry with the same transactional id must yield the load exactly
once: its ``init_transactions`` fences the dead attempt and aborts its open transaction.
Derive the id from what identifies the logical load (:func:`transactional_id_for`).

An open transaction holds back every read_committed reader of the partitions it wrote (the
last stable offset cannot pass it), so the transaction timeout is sized to the load rather
than left at the broker's 15-minute maximum: a crashed load stops blocking readers sooner.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from cart_pipeline.kafka_io.settings import KafkaSettings
from cart_pipeline.kafka_io.transactional import (
    BROKER_MAX_TRANSACTION_TIMEOUT_S,
    OffsetRange,
    TransactionalProducer,
)
from cart_pipeline.loader.config import GeneratorConfig
from cart_pipeline.loader.generator import CartEventGenerator, GenerationStats

#: Records generated and handed to the producer between two polls when not rate limited:
#: small enough for timely delivery reports and progress, large enough that the loop costs
#: nothing (and the generator is as fast at 8 Ki records per batch as at 64 Ki).
CHUNK = 8_192
#: A rate-limited load releases about this many chunks per second (token-bucket burst).
RATE_CHUNKS_PER_S = 20
#: Conservative throughput assumed when sizing the transaction timeout of unthrottled loads.
ASSUMED_MIN_EVENTS_PER_S = 20_000
MIN_TRANSACTION_TIMEOUT_S = 60.0

__all__ = [
    "LoadProgress",
    "LoadResult",
    "OffsetRange",
    "TokenBucket",
    "load_events",
    "transaction_timeout_for",
    "transactional_id_for",
]


@dataclass(frozen=True, slots=True)
class LoadProgress:
    """A snapshot during a load: ``produced`` are queued, ``delivered`` acknowledged (acks=all)."""

    topic: str
    total: int
    produced: int
    delivered: int
    well_formed: int
    malformed: int
    elapsed_s: float

    @property
    def events_per_s(self) -> float:
        return self.produced / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def fraction(self) -> float:
        return self.produced / self.total if self.total else 1.0

    def __str__(self) -> str:
        return (
            f"{self.topic}: {self.produced:,}/{self.total:,} produced ({self.fraction:.0%}), "
            f"{self.delivered:,} delivered, {self.malformed:,} malformed, "
            f"{self.events_per_s:,.0f} events/s"
        )


@dataclass(frozen=True)
class LoadResult:
    """A committed load: what was written where, how fast, and the truth to check it against."""

    topic: str
    transactional_id: str
    seed: int
    events: int
    well_formed: int
    malformed: int
    stats: GenerationStats
    #: partition -> (first, last offset, record count) written by this load.
    partitions: Mapping[int, OffsetRange]
    elapsed_s: float
    _generator: CartEventGenerator = field(repr=False, compare=False)

    @property
    def events_per_s(self) -> float:
        return self.events / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def expected_totals(self) -> dict[tuple[str, str], int]:
        """``SUM(qty)`` per (customer, item) over this load's well-formed records."""
        return self._generator.expected_totals()

    def summary(self) -> dict[str, object]:
        """JSON-friendly figures for logs and asset metadata."""
        return {
            "topic": self.topic,
            "transactional_id": self.transactional_id,
            "seed": self.seed,
            "events": self.events,
            "well_formed": self.well_formed,
            "malformed": self.malformed,
            "malformed_by_kind": {str(k): v for k, v in self.stats.malformed.items()},
            "partitions": {
                str(p): {"first": r.first, "last": r.last, "count": r.count}
                for p, r in sorted(self.partitions.items())
            },
            "elapsed_s": round(self.elapsed_s, 3),
            "events_per_s": round(self.events_per_s, 1),
        }


class TokenBucket:
    """At most ``rate`` events/s on average and ``capacity`` at once.

    Starts empty, so ``n`` events take at least ``n / rate`` seconds: the limit is a bound,
    not an average that a fast start could exceed. ``sleep`` is injectable so the producer
    can serve delivery reports while it waits.
    """

    def __init__(
        self,
        rate: float,
        capacity: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], object] = time.sleep,
    ) -> None:
        if not rate > 0 or math.isinf(rate):
            raise ValueError(f"rate must be a positive finite number, got {rate}")
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self.rate, self.capacity = float(rate), capacity
        self._clock, self._sleep = clock, sleep
        self._tokens = 0.0
        self._stamp = clock()

    def acquire(self, n: int) -> None:
        if not 0 < n <= self.capacity:
            raise ValueError(f"can acquire 1..{self.capacity} tokens at once, asked {n}")
        while True:
            now = self._clock()
            self._tokens = min(self.capacity, self._tokens + (now - self._stamp) * self.rate)
            self._stamp = now
            # The epsilon absorbs float rounding: a shortfall of 1e-12 tokens would ask for a
            # sleep too short to move a float clock, looping forever.
            if self._tokens >= n - 1e-9:
                self._tokens = max(0.0, self._tokens - n)
                return
            self._sleep((n - self._tokens) / self.rate)


def transactional_id_for(topic: str, seed: int, run_id: str) -> str:
    """A stable id per logical load: the same (topic, seed, run) retried reuses it.

    ``run_id`` is what identifies the load across retries (e.g. a Dagster run id), so a
    retry fences the attempt it replaces, while two different loads never fence each other.
    """
    if not run_id:
        raise ValueError("run_id must be non-empty: it is what makes the id unique per load")
    digest = hashlib.sha256(f"{topic}\0{seed}\0{run_id}".encode()).hexdigest()[:16]
    return f"cart_pipeline-load-{topic}-{seed}-{digest}"


def transaction_timeout_for(n_events: int, rate_limit: float = 0) -> float:
    """Seconds the load's transaction may stay open: 3x its expected duration + 60 s.

    Raises ``ValueError`` when a rate-limited load could not finish within the broker's
    maximum, instead of letting the broker abort it at the end.
    """
    rate = rate_limit if rate_limit > 0 else ASSUMED_MIN_EVENTS_PER_S
    expected_s = n_events / rate
    if rate_limit > 0 and expected_s > 0.8 * BROKER_MAX_TRANSACTION_TIMEOUT_S:
        raise ValueError(
            f"{n_events:,} events at {rate_limit:,.0f} events/s take {expected_s:,.0f}s, but one "
            f"transaction may stay open at most {BROKER_MAX_TRANSACTION_TIMEOUT_S:.0f}s "
            "(broker transaction.max.timeout.ms): raise the rate or split the load"
        )
    return min(
        BROKER_MAX_TRANSACTION_TIMEOUT_S, max(MIN_TRANSACTION_TIMEOUT_S, 3 * expected_s + 60)
    )


def load_events(
    settings: KafkaSettings,
    topic: str,
    config: GeneratorConfig,
    *,
    transactional_id: str,
    rate_limit: float = 0,
    progress: Callable[[LoadProgress], None] | None = None,
    progress_every: int = 100_000,
    transaction_timeout_s: float | None = None,
) -> LoadResult:
    """Generate ``config.n_events`` records and write them to ``topic`` in one transaction.

    ``rate_limit`` caps events/s (0: as fast as possible). ``progress`` is called about every
    ``progress_every`` events and once when all are delivered, just before the commit; an
    exception it raises aborts the load like any other.

    On failure the transaction is aborted (nothing reaches read_committed readers) and
    ``DeliveryFailed`` (or another ``KafkaIOError``) names the topic and the cause, chained.
    ``KeyboardInterrupt``/``SystemExit`` abort too, then propagate unchanged (with a note):
    a cancellation must stay a cancellation, not become a retryable load error.
    ``elapsed_s`` runs from the open transaction to the commit (not generator set-up).
    """
    if rate_limit < 0 or math.isnan(rate_limit) or math.isinf(rate_limit):
        raise ValueError(f"rate_limit must be >= 0 events/s (0 = unlimited), got {rate_limit}")
    if progress_every < 1:
        raise ValueError(f"progress_every must be >= 1, got {progress_every}")
    timeout_s = transaction_timeout_s or transaction_timeout_for(config.n_events, rate_limit)
    chunk = CHUNK if not rate_limit else max(1, min(CHUNK, int(rate_limit / RATE_CHUNKS_PER_S)))
    # Generator batches are the producer's chunks, so progress counts are exact.
    generator = CartEventGenerator(config, batch_size=chunk)
    txn = TransactionalProducer(
        settings, topic, transactional_id=transactional_id, transaction_timeout_s=timeout_s
    )
    with txn:
        started = time.perf_counter()
        bucket = TokenBucket(rate_limit, chunk, sleep=txn.poll) if rate_limit else None

        def snapshot() -> LoadProgress:
            stats = generator.stats()
            return LoadProgress(
                topic=topic,
                total=config.n_events,
                produced=stats.records,
                delivered=txn.tracker.delivered,
                well_formed=stats.well_formed,
                malformed=stats.malformed_total,
                elapsed_s=time.perf_counter() - started,
            )

        next_report = progress_every
        produced = 0
        for batch in generator.batches():
            if bucket is not None:
                bucket.acquire(len(batch))
            txn.produce(batch.keys, batch.values)
            produced += len(batch)
            if progress is not None and produced >= next_report:
                next_report = (produced // progress_every + 1) * progress_every
                progress(snapshot())
        txn.flush()
        if progress is not None:  # still inside the transaction: raising here aborts it
            progress(snapshot())
        partitions = txn.commit()
        elapsed = time.perf_counter() - started

    stats = generator.stats()
    return LoadResult(
        topic=topic,
        transactional_id=transactional_id,
        seed=config.seed,
        events=stats.records,
        well_formed=stats.well_formed,
        malformed=stats.malformed_total,
        stats=stats,
        partitions=partitions,
        elapsed_s=elapsed,
        _generator=generator,
    )
