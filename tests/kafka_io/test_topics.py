"""Topic creation and verification against the real broker; bounded failure when it is absent."""

from __future__ import annotations

import time

import pytest
from confluent_kafka import Producer

from cart_pipeline.embedded.process import free_port
from cart_pipeline.kafka_io import KafkaSettings, KafkaUnavailable, TopicMismatch, Topics


def test_ensure_creates_then_verifies(kafka_bootstrap: str, unique_name: str) -> None:
    topics = Topics(KafkaSettings(kafka_bootstrap))
    created = topics.ensure(unique_name, partitions=3)
    assert (created.partitions, created.replication, created.created) == (3, 1, True)
    again = topics.ensure(unique_name, partitions=3)
    assert (again.partitions, again.created) == (3, False)


def test_partition_mismatch_fails_and_changes_nothing(
    kafka_bootstrap: str, unique_name: str
) -> None:
    topics = Topics(KafkaSettings(kafka_bootstrap))
    topics.ensure(unique_name, partitions=2)
    with pytest.raises(TopicMismatch, match=r"2 partition\(s\) but 4 were configured") as info:
        topics.ensure(unique_name, partitions=4)
    assert info.value.topic == unique_name
    described = topics.describe(unique_name)
    assert described is not None and described.partitions == 2


def test_end_offsets_follow_produced_records(kafka_bootstrap: str, unique_name: str) -> None:
    settings = KafkaSettings(kafka_bootstrap)
    topics = Topics(settings)
    topics.ensure(unique_name, partitions=2)
    assert topics.end_offsets(unique_name) == {0: 0, 1: 0}
    producer = Producer(settings.producer_config())
    for i in range(10):
        producer.produce(unique_name, key=b"k", value=str(i).encode(), partition=i % 2)
    assert producer.flush(30) == 0
    assert topics.end_offsets(unique_name) == {0: 5, 1: 5}


def test_unreachable_broker_fails_within_the_bound() -> None:
    settings = KafkaSettings(f"127.0.0.1:{free_port()}", timeout_s=3)
    started = time.monotonic()
    with pytest.raises(KafkaUnavailable, match=r"did not answer within 3s.*CART_KAFKA_BOOTSTRAP"):
        Topics(settings).describe("anything")
    assert time.monotonic() - started < 15


def test_settings_validate_and_keep_secrets_out_of_describe() -> None:
    with pytest.raises(ValueError, match="CART_KAFKA_SASL_USERNAME"):
        KafkaSettings("broker:9092", security_protocol="SASL_SSL")
    with pytest.raises(ValueError, match="Unknown Kafka security protocol"):
        KafkaSettings("broker:9092", security_protocol="TLS")
    cloud = KafkaSettings(
        "pkc.example:9092", security_protocol="SASL_SSL", sasl_username="KEY",
        sasl_password="s3cr3t-value",
    )  # fmt: skip
    assert "s3cr3t-value" not in repr(cloud)
    assert "s3cr3t-value" not in str(cloud.describe())
    assert cloud.client_config()["sasl.password"] == "s3cr3t-value"
    producer = cloud.producer_config("tx-1")
    assert producer["enable.idempotence"] is True and producer["acks"] == "all"
    assert producer["partitioner"] == "murmur2_random"
    assert producer["transactional.id"] == "tx-1"
    # librdkafka refuses message.timeout.ms > transaction.timeout.ms: the config must be usable.
    assert producer["message.timeout.ms"] <= producer["transaction.timeout.ms"]
    from confluent_kafka import Producer as RealProducer

    # Raises KafkaException(_INVALID_ARG) on an inconsistent config (loopback: no lookups).
    RealProducer(KafkaSettings(f"127.0.0.1:{free_port()}").producer_config("tx-2"))
