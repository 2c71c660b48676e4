"""One Kafka transaction from an idempotent, acks=all producer: all records commit, or none.

confluent-kafka reports trouble in four ways: ``BufferError`` (local queue full), delivery
reports carrying an error, ``KafkaException`` with retriable / abortable / fatal flags, and
exceptions raised from our own callbacks inside ``poll``. This wrapper folds them into one
rule: any failure aborts the transaction (so read_committed readers see nothing) and raises
:class:`DeliveryFailed` naming the topic and what happened. Interrupts (``KeyboardInterrupt``,
``SystemExit``) abort too, then propagate unchanged so the caller still sees a cancellation.

A stable ``transactional.id`` per logical load is what makes a retry safe: the new producer's
``init_transactions`` fences its predecessor (a crashed process or a zombie) and aborts the
predecessor's open transaction, so the retry never adds to half a load.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from cart_pipeline.kafka_io.diagnostics import ClientErrors
from cart_pipeline.kafka_io.errors import (
    DeliveryFailed,
    KafkaIOError,
    KafkaUnavailable,
    TopicNotFound,
)
from cart_pipeline.kafka_io.settings import KafkaSettings
from cart_pipeline.kafka_io.topics import Topics

#: Broker default of ``transaction.max.timeout.ms``: no transaction may stay open longer.
BROKER_MAX_TRANSACTION_TIMEOUT_S = 900.0
#: librdkafka's local queue; on overflow we poll (serving delivery reports) and retry.
QUEUE_MAX_MESSAGES = 500_000
#: A failed retriable commit is retried this many times before giving up.
COMMIT_ATTEMPTS = 3


@dataclass(frozen=True, slots=True)
class OffsetRange:
    """Offsets this transaction wrote to one partition, from the delivery reports."""

    first: int
    last: int
    count: int


class DeliveryTracker:
    """Delivery-report callback: per-partition offset ranges, and the first errors kept.

    It runs once per record inside ``poll``/``flush``, so it uses flat lists indexed by
    partition rather than dicts or objects. With idempotence each partition's reports
    arrive in offset order, so the first report is the first offset and the latest the last.
    """

    MAX_ERRORS_KEPT = 5

    def __init__(self, partitions: int) -> None:
        self.first: list[int] = [-1] * partitions
        self.last: list[int] = [-1] * partitions
        self.counts: list[int] = [0] * partitions
        self.failed = 0
        self.errors: list[tuple[KafkaError, int | None, int | None]] = []

    def __call__(self, err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            self.failed += 1
            if len(self.errors) < self.MAX_ERRORS_KEPT:
                self.errors.append((err, msg.partition(), msg.offset()))
            return
        # Successful reports always carry both (the stubs say ``int | None``).
        partition: int = msg.partition()  # type: ignore[assignment]
        offset: int = msg.offset()  # type: ignore[assignment]
        try:
            if self.first[partition] < 0:
                self.first[partition] = offset
            self.last[partition] = offset
            self.counts[partition] += 1
        except IndexError:  # partitions were added during the load
            self.grow(partition + 1)
            self(err, msg)

    def grow(self, size: int) -> None:
        """Track at least ``size`` partitions."""
        extra = size - len(self.first)
        self.first += [-1] * extra
        self.last += [-1] * extra
        self.counts += [0] * extra

    @property
    def delivered(self) -> int:
        return sum(self.counts)

    def ranges(self) -> dict[int, OffsetRange]:
        return {
            partition: OffsetRange(self.first[partition], self.last[partition], count)
            for partition, count in enumerate(self.counts)
            if count
        }


class TransactionalProducer:
    """Produce ``(key, value)`` records to one topic inside a single transaction.

    Usage: ``with TransactionalProducer(...) as txn: txn.produce(keys, values); txn.commit()``.
    Leaving the block without :meth:`commit` (an exception, an interrupt) aborts.
    """

    def __init__(
        self,
        settings: KafkaSettings,
        topic: str,
        *,
        transactional_id: str,
        transaction_timeout_s: float = 60.0,
        partitions: int | None = None,
        **overrides: Any,
    ) -> None:
        if not transactional_id:
            raise ValueError("transactional_id must be a non-empty string")
        if not 1 <= transaction_timeout_s <= BROKER_MAX_TRANSACTION_TIMEOUT_S:
            raise ValueError(
                f"transaction_timeout_s must be in [1, {BROKER_MAX_TRANSACTION_TIMEOUT_S:.0f}] "
                f"(the broker's default transaction.max.timeout.ms), got {transaction_timeout_s}"
            )
        self.settings, self.topic, self.transactional_id = settings, topic, transactional_id
        #: Known by a caller that just read or created the topic: ``begin`` skips describing it.
        self.partitions = partitions
        self.transaction_timeout_s = transaction_timeout_s
        txn_ms = int(transaction_timeout_s * 1000)
        base = settings.producer_config(transactional_id=transactional_id)
        self.config: dict[str, Any] = {
            **base,
            "transaction.timeout.ms": txn_ms,
            # librdkafka refuses message.timeout.ms > transaction.timeout.ms.
            "message.timeout.ms": min(int(base["message.timeout.ms"]), txn_ms),
            "queue.buffering.max.messages": QUEUE_MAX_MESSAGES,
            **overrides,
        }
        self.tracker = DeliveryTracker(0)
        self.config["on_delivery"] = self.tracker
        self._producer: Producer | None = None
        self._open = False
        self.committed = False

    # -- lifecycle ---------------------------------------------------------------------------
    def __enter__(self) -> TransactionalProducer:
        self.begin()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, _tb: Any
    ) -> None:
        """Abort unless committed. Errors become :class:`DeliveryFailed`; interrupts stay."""
        try:
            if not self._open:
                return
            reason = "the block ended without commit" if exc is None else _describe(exc)
            failure = self.abort(reason)
            if exc is None:
                return
            note = failure or (
                f"transaction of {self.transactional_id!r} aborted: nothing was committed"
            )
            if isinstance(exc, KafkaIOError) or not isinstance(exc, Exception):
                exc.add_note(note)
                return
            raise DeliveryFailed(
                f"load aborted, nothing was committed: {reason}"
                + (f" ({failure})" if failure else ""),
                topic=self.topic,
            ) from exc
        finally:
            self.close()

    def begin(self) -> None:
        """Check the topic, fence predecessors with this id, open the transaction."""
        partitions = self.partitions
        if partitions is None:
            info = Topics(self.settings).describe(self.topic)  # retries a leader not elected
            if info is None:
                raise TopicNotFound(
                    "topic does not exist (create it first; loads never auto-create topics)",
                    topic=self.topic,
                )
            partitions = info.partitions
        self.tracker.grow(partitions)
        try:
            self._producer = Producer(self.config)
        except KafkaException as exc:
            raise DeliveryFailed(
                f"invalid producer configuration: {exc}", topic=self.topic
            ) from None
        try:
            # Connect first: when init_transactions starts before any broker is up,
            # librdkafka asks for the transaction coordinator only at its next 500 ms timer
            # tick (seen in 1 of ~6 fresh producers: init 0.52 s instead of 0.07 s). The first
            # metadata answer comes from the bootstrap connection, which is then replaced by
            # one to the broker it names; the second answer needs that one up.
            for _ in range(2):
                self._producer.list_topics(self.topic, timeout=self.settings.timeout_s)
            self._producer.init_transactions(self.settings.timeout_s)
            self._producer.begin_transaction()
        except KafkaException as exc:
            self.close()
            raise self._error("could not open a transaction", exc, unavailable=True) from None
        except BaseException:
            self.close()
            raise
        self._open = True

    def close(self) -> None:
        """Release librdkafka's resources; pending (aborted) records are purged, not sent.

        A fenced (fatal) producer raises its error again from ``flush``: swallowed here, as
        close runs while another error (the one that explains the failure) is propagating.
        """
        producer, self._producer = self._producer, None
        if producer is not None:
            with contextlib.suppress(KafkaException):
                producer.purge()
                producer.flush(0)

    # -- producing ---------------------------------------------------------------------------
    def produce(self, keys: Sequence[bytes], values: Sequence[bytes]) -> None:
        """Queue records (partitioned by key, murmur2 like Java); full queue -> poll and retry."""
        producer = self._require_open()
        produce, topic = producer.produce, self.topic
        for key, value in zip(keys, values, strict=True):
            try:
                produce(topic, value, key)
            except BufferError:
                self._wait_for_room(producer, topic, key, value)
        producer.poll(0)
        self.check()

    def _wait_for_room(self, producer: Producer, topic: str, key: bytes, value: bytes) -> None:
        deadline = time.monotonic() + self.config["message.timeout.ms"] / 1000
        while True:
            producer.poll(0.05)
            self.check()
            try:
                producer.produce(topic, value, key)
                return
            except BufferError:
                if time.monotonic() > deadline:
                    raise DeliveryFailed(
                        "librdkafka's queue stayed full: the broker accepts no records",
                        topic=self.topic,
                    ) from None

    def poll(self, timeout_s: float = 0.0) -> None:
        """Serve delivery reports for up to ``timeout_s`` (a rate limiter's sleep)."""
        self._require_open().poll(timeout_s)
        self.check()

    def check(self) -> None:
        """Fail now if any delivery report carried an error: records are never lost silently."""
        if not self.tracker.errors:
            return
        err, partition, offset = self.tracker.errors[0]
        raise DeliveryFailed(
            f"{self.tracker.failed} record(s) failed delivery, first: {err.str()} ({err.name()})",
            topic=self.topic,
            partition=partition,
            offset=offset if offset is not None and offset >= 0 else None,
        )

    def flush(self) -> None:
        """Wait until every queued record is acknowledged (or fail): the transaction stays open."""
        producer = self._require_open()
        flush_s = self.config["message.timeout.ms"] / 1000 + self.settings.timeout_s
        remaining = producer.flush(flush_s)
        self.check()
        if remaining:
            cause = ClientErrors.of(self.config).cause()
            raise DeliveryFailed(
                f"{remaining} record(s) still undelivered after {flush_s:.0f}s"
                + (f"; last error: {cause}" if cause else ""),
                topic=self.topic,
            )

    def commit(self) -> dict[int, OffsetRange]:
        """Deliver everything, commit, and return what each partition received."""
        self.flush()
        producer = self._require_open()
        for attempt in range(1, COMMIT_ATTEMPTS + 1):
            try:
                producer.commit_transaction(self.settings.timeout_s)
                break
            except KafkaException as exc:
                err: KafkaError = exc.args[0]
                if not err.retriable() or attempt == COMMIT_ATTEMPTS:
                    raise self._error("commit failed", exc) from None
        self._open = False
        self.committed = True
        return self.tracker.ranges()

    def abort(self, reason: str) -> str | None:
        """Abort the open transaction; return why the abort itself failed, if it did.

        A failed abort (broker gone, producer fenced) still leaves nothing visible to
        read_committed readers: the broker aborts the transaction at its timeout, or when
        the next producer with this transactional id initialises.
        """
        if not self._open or self._producer is None:
            return None
        self._open = False
        try:
            self._producer.abort_transaction(self.settings.timeout_s)
        except KafkaException as exc:
            return (
                f"aborting the transaction of {self.transactional_id!r} after {reason} failed: "
                f"{exc.args[0].str()}; the broker aborts it within "
                f"{self.transaction_timeout_s:.0f}s or when a retry with the same "
                "transactional id starts"
            )
        return None

    # -- helpers -----------------------------------------------------------------------------
    def _require_open(self) -> Producer:
        if self._producer is None or not self._open:
            raise RuntimeError("the transaction is not open: use begin() or a with block")
        return self._producer

    def _error(self, what: str, exc: KafkaException, *, unavailable: bool = False) -> KafkaIOError:
        err: KafkaError = exc.args[0]
        hint = ""
        if err.code() in (KafkaError._FENCED, KafkaError.PRODUCER_FENCED):
            hint = (
                "; a newer producer with the same transactional id took over (a retry of "
                "this load), so this one's records are discarded"
            )
        elif err.code() == KafkaError.INVALID_TRANSACTION_TIMEOUT:
            hint = (
                f"; the broker's transaction.max.timeout.ms is below the requested "
                f"{self.transaction_timeout_s:.0f}s"
            )
        message = (
            f"{what} for transactional id {self.transactional_id!r}: {err.str()} "
            f"({err.name()}){hint}"
        )
        if unavailable and err.code() in (KafkaError._TIMED_OUT, KafkaError._TRANSPORT):
            # librdkafka's error_cb knows why (refused credentials, TLS, connection refused).
            errors = ClientErrors.of(self.config)
            known = errors.failure(topic=self.topic)
            if known is not None:
                return known
            cause = errors.cause()
            return KafkaUnavailable(
                message + (f"; last error: {cause}" if cause else ""), topic=self.topic
            )
        return DeliveryFailed(message, topic=self.topic)


def _describe(exc: BaseException) -> str:
    # confluent-kafka raises a fatal error (e.g. fenced) inside flush/poll, then runs the next
    # delivery callback with it still set: Python reports "SystemError: <function ...> returned
    # a result with an exception set", caused by the real KafkaException. Name the real one.
    if isinstance(exc, SystemError) and isinstance(exc.__cause__, KafkaException):
        exc = exc.__cause__
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
