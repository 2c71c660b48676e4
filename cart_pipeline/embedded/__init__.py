"""The embedded default: a real Apache Kafka broker (from Maven Central) and our engine, locally."""

from cart_pipeline.embedded.config import StackConfig
from cart_pipeline.embedded.errors import (
    PortInUse,
    PrerequisiteMissing,
    RuntimeResolveError,
    ServiceStartError,
    StackError,
)
from cart_pipeline.embedded.kafka import KafkaBroker, KafkaConfig
from cart_pipeline.embedded.stack import LocalStack, ServiceStatus

__all__ = [
    "KafkaBroker",
    "KafkaConfig",
    "LocalStack",
    "PortInUse",
    "PrerequisiteMissing",
    "RuntimeResolveError",
    "ServiceStartError",
    "ServiceStatus",
    "StackConfig",
    "StackError",
]
