"""Errors of the Kafka I/O layer.

::

    KafkaIOError                 a Kafka operation failed (carries topic / partition / offset)
     ├── KafkaUnavailable        no broker answered within the bound (address, security settings?)
     │    └── KafkaAuthenticationFailed   the broker refused the SASL credentials
     ├── TopicNotFound           the topic does not exist
     ├── TopicMismatch           the topic exists but differs from what was asked (never changed)
     └── DeliveryFailed          the broker refused or lost a produced batch / transaction
"""

from __future__ import annotations


class KafkaIOError(Exception):
    def __init__(
        self,
        message: str,
        *,
        topic: str | None = None,
        partition: int | None = None,
        offset: int | None = None,
    ) -> None:
        self.topic, self.partition, self.offset = topic, partition, offset
        where = ", ".join(
            f"{k}={v}"
            for k, v in (("topic", topic), ("partition", partition), ("offset", offset))
            if v is not None
        )
        super().__init__(f"{message} [{where}]" if where else message)


class KafkaUnavailable(KafkaIOError):
    pass


class KafkaAuthenticationFailed(KafkaUnavailable):
    pass


class TopicNotFound(KafkaIOError):
    pass


class TopicMismatch(KafkaIOError):
    pass


class DeliveryFailed(KafkaIOError):
    pass
