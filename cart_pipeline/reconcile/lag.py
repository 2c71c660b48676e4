"""Where the persistent query stands: its consumer group's committed offsets vs. a snapshot.

ksqlDB names the consumer group of a persistent query ``_confluent-ksql-<service id>query_<id>``;
our embedded engine follows the same rule, so the same code reads lag from either.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass

from confluent_kafka import ConsumerGroupTopicPartitions, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient

from cart_pipeline.kafka_io import KafkaSettings, KafkaUnavailable


def query_consumer_group(service_id: str, query_id: str) -> str:
    return f"_confluent-ksql-{service_id}query_{query_id}"


@dataclass(frozen=True)
class LagReport:
    group: str
    committed: dict[int, int]
    targets: dict[int, int]
    waited_s: float
    #: Total lag at the first look, before any waiting.
    initial_lag: int = 0

    @property
    def lag(self) -> dict[int, int]:
        return {p: max(0, end - self.committed.get(p, 0)) for p, end in self.targets.items()}

    @property
    def total_lag(self) -> int:
        return sum(self.lag.values())

    @property
    def caught_up(self) -> bool:
        return self.total_lag == 0


def committed_offsets(
    settings: KafkaSettings,
    group: str,
    topic: str,
    partitions: list[int],
    admin: AdminClient | None = None,
) -> dict[int, int]:
    admin = admin or AdminClient(settings.client_config())
    request = ConsumerGroupTopicPartitions(group, [TopicPartition(topic, p) for p in partitions])
    try:
        future = admin.list_consumer_group_offsets([request], request_timeout=settings.timeout_s)
        result = future[group].result(timeout=settings.timeout_s)
    except KafkaException as exc:
        raise KafkaUnavailable(
            f"could not read offsets of group {group}: {exc}", topic=topic
        ) from None
    # A partition with nothing committed yet reports a negative offset: count it as 0.
    return {tp.partition: max(tp.offset, 0) for tp in result.topic_partitions}


def wait_for_offsets(
    settings: KafkaSettings,
    group: str,
    topic: str,
    targets: Mapping[int, int],
    timeout_s: float,
    poll_s: float = 0.5,
    admin: AdminClient | None = None,
) -> LagReport:
    """Poll the group's committed offsets until they reach ``targets`` or ``timeout_s`` passes.

    ``admin``: a client to reuse (a new one costs a bootstrap, ~40 ms).
    """
    started = time.monotonic()
    partitions = sorted(targets)
    admin = admin or AdminClient(settings.client_config())
    initial: int | None = None
    while True:
        committed = committed_offsets(settings, group, topic, partitions, admin)
        report = LagReport(group, committed, dict(targets), time.monotonic() - started)
        if initial is None:
            initial = report.total_lag
        report = LagReport(group, committed, dict(targets), report.waited_s, initial)
        if report.caught_up or report.waited_s >= timeout_s:
            return report
        time.sleep(min(poll_s, max(0.0, timeout_s - report.waited_s)))
