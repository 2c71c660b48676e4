"""Reliability tests: hostile inputs and dead peers against the real session broker and engine."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from cart_pipeline.kafka_io import KafkaSettings
from cart_pipeline.ksql import KsqlClient
from tests.engine.conftest import KsqlClient as RawClient


@pytest.fixture
def raw(ksqldb_url: str) -> Iterator[RawClient]:
    """The engine tests' plain HTTP client (status codes and bodies as sent)."""
    c = RawClient(ksqldb_url)
    yield c
    c.close()


@pytest.fixture
def ksql(ksqldb_url: str) -> Iterator[KsqlClient]:
    """The pipeline's own REST client."""
    with KsqlClient(ksqldb_url, timeout=30, not_ready_retry_s=0) as c:
        yield c


@pytest.fixture
def kafka_settings(kafka_bootstrap: str) -> KafkaSettings:
    return KafkaSettings(bootstrap_servers=kafka_bootstrap, timeout_s=20)
