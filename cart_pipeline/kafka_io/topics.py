"""Create, verify and measure topics with Kafka's admin API."""

from __future__ import annotations

import time
from dataclasses import dataclass

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, ClusterMetadata, NewTopic

from cart_pipeline.kafka_io.diagnostics import ClientErrors
from cart_pipeline.kafka_io.errors import KafkaUnavailable, TopicMismatch, TopicNotFound
from cart_pipeline.kafka_io.settings import KafkaSettings


@dataclass(frozen=True)
class TopicInfo:
    name: str
    partitions: int
    replication: int
    created: bool = False


class Topics:
    def __init__(self, settings: KafkaSettings) -> None:
        self.settings = settings
        config = settings.client_config()
        self._errors = ClientErrors.of(config)
        self._admin = AdminClient(config)

    def describe(self, topic: str) -> TopicInfo | None:
        """The topic's layout, or None when it does not exist.

        A topic created a moment ago may report LEADER_NOT_AVAILABLE until its leader is
        elected; that is retried (bounded) rather than mistaken for "missing".
        """
        deadline = time.monotonic() + self.settings.timeout_s
        while True:
            metadata = self._metadata(topic)
            found = metadata.topics.get(topic)
            if found is None or (
                found.error is not None and found.error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART
            ):
                return None
            if found.error is None and found.partitions:
                first = next(iter(found.partitions.values()))
                return TopicInfo(topic, len(found.partitions), len(first.replicas))
            if time.monotonic() > deadline:
                raise KafkaUnavailable(f"topic metadata unavailable: {found.error}", topic=topic)
            time.sleep(0.1)

    def ensure(self, topic: str, partitions: int, replication: int = 1) -> TopicInfo:
        """Create ``topic`` when missing; when present, verify it and never change it."""
        existing = self.describe(topic)
        if existing is None:
            future = self._admin.create_topics(
                [NewTopic(topic, partitions, replication)],
                operation_timeout=self.settings.timeout_s,
                request_timeout=self.settings.timeout_s,
            )[topic]
            try:
                future.result(timeout=self.settings.timeout_s)
            except KafkaException as exc:
                if "TOPIC_ALREADY_EXISTS" not in str(exc):
                    raise KafkaUnavailable(f"could not create topic: {exc}", topic=topic) from None
            else:
                return TopicInfo(topic, partitions, replication, created=True)
            # It exists, but a topic created a moment ago can still be missing from the
            # metadata this client sees: wait (bounded) until it shows up.
            deadline = time.monotonic() + self.settings.timeout_s
            while (existing := self.describe(topic)) is None:
                if time.monotonic() > deadline:
                    raise KafkaUnavailable("topic exists but its metadata never appeared",
                                           topic=topic)  # fmt: skip
                time.sleep(0.1)
        if existing.partitions != partitions:
            raise TopicMismatch(
                f"topic exists with {existing.partitions} partition(s) but {partitions} were "
                "configured; it was left unchanged. Configure the existing partition count, or "
                "migrate to a new topic (Kafka cannot shrink partitions, and adding them moves "
                "keys between partitions, breaking per-cart ordering).",
                topic=topic,
            )
        return existing

    def end_offsets(self, topic: str) -> dict[int, int]:
        """High watermark per partition (for read_committed readers: the last stable offset)."""
        info = self.describe(topic)
        if info is None:
            raise TopicNotFound("topic does not exist", topic=topic)
        consumer = Consumer(self.settings.consumer_config("cart_pipeline-offsets"))
        try:
            result = {}
            for partition in range(info.partitions):
                _, high = consumer.get_watermark_offsets(
                    TopicPartition(topic, partition), timeout=self.settings.timeout_s
                )
                result[partition] = int(high)
            return result
        except KafkaException as exc:
            raise self._unavailable(exc, topic) from None
        finally:
            consumer.close()

    def delete(self, topic: str) -> None:
        future = self._admin.delete_topics([topic], operation_timeout=self.settings.timeout_s)
        try:
            future[topic].result(timeout=self.settings.timeout_s)
        except KafkaException as exc:
            if "UNKNOWN_TOPIC" not in str(exc):
                raise self._unavailable(exc, topic) from None

    def _metadata(self, topic: str) -> ClusterMetadata:
        """Metadata of ``topic``, bounded by the Kafka timeout. The wait is sliced (1 s, 2 s,
        4 s, ... — growing, so a slow broker still gets its time) so that a rejected login or
        TLS handshake, which reaches ``error_cb`` at once while the call would only time out,
        fails within about a second."""
        deadline = time.monotonic() + self.settings.timeout_s
        step = 1.0
        while True:
            remaining = deadline - time.monotonic()
            wait = max(0.1, min(step, remaining))
            try:
                return self._admin.list_topics(topic=topic, timeout=wait)
            except KafkaException as exc:
                self._admin.poll(0)  # serves error_cb
                if wait >= remaining or self._errors.definitive:
                    raise self._unavailable(exc) from None
            step *= 2

    def _unavailable(self, exc: Exception, topic: str | None = None) -> KafkaUnavailable:
        self._admin.poll(0)  # serves error_cb: librdkafka's reason for the failure
        known = self._errors.failure(topic=topic)
        if known is not None:
            return known
        where = ", ".join(f"{k}={v}" for k, v in self.settings.describe().items())
        cause = self._errors.cause()
        return KafkaUnavailable(
            f"Kafka did not answer within {self.settings.timeout_s:.0f}s ({where}): {exc}"
            + (f"; last error: {cause}" if cause else "")
            + ". Check CART_KAFKA_BOOTSTRAP_SERVERS and the security settings, or start the "
            "embedded stack with `cart-pipeline up`.",
            topic=topic,
        )
