"""Thin wrappers over confluent-kafka: one place for client settings, topics, and errors."""

from cart_pipeline.kafka_io.errors import (
    DeliveryFailed,
    KafkaAuthenticationFailed,
    KafkaIOError,
    KafkaUnavailable,
    TopicMismatch,
    TopicNotFound,
)
from cart_pipeline.kafka_io.settings import KafkaSettings
from cart_pipeline.kafka_io.topics import TopicInfo, Topics

__all__ = [
    "DeliveryFailed",
    "KafkaAuthenticationFailed",
    "KafkaIOError",
    "KafkaSettings",
    "KafkaUnavailable",
    "TopicInfo",
    "TopicMismatch",
    "TopicNotFound",
    "Topics",
]
