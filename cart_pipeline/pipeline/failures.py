"""Turn the package's own errors into Dagster failures that read as one clear message.

A stack trace is noise when the cause is known (Kafka unreachable, a ksqlDB statement error,
a definition mismatch): the UI then shows the server's or our message as the failure.
"""

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import dagster as dg

from cart_pipeline.kafka_io import KafkaIOError
from cart_pipeline.ksql import KsqlError
from cart_pipeline.pipeline.ddl import DefinitionMismatch, QueryNotRunning

KNOWN_ERRORS = (
    KafkaIOError,
    KsqlError,
    DefinitionMismatch,
    QueryNotRunning,
    ValueError,
)


@contextmanager
def clear_failures() -> Iterator[None]:
    try:
        yield
    except KNOWN_ERRORS as exc:
        raise dg.Failure(
            description=f"{type(exc).__name__}: {exc}",
            metadata={"error_type": type(exc).__name__},
        ) from None


F = TypeVar("F", bound=Callable[..., Any])


def fails_clearly(fn: F) -> F:
    """Decorator form of :func:`clear_failures` for asset functions (signature preserved)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with clear_failures():
            return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
