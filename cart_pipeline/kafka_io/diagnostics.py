"""Why a Kafka call failed: librdkafka's own errors, remembered and turned into advice.

A blocking call against a broker that refuses the credentials, fails the TLS handshake or
cannot be resolved only times out ("Broker transport failure"); the real cause reaches the
client's ``error_cb`` and its log, which librdkafka writes to stderr unless told otherwise.
:meth:`KafkaSettings.client_config` therefore gives every client a fresh :class:`ClientErrors`
as ``error_cb`` (it remembers the most telling error) and routes librdkafka's log to Python
logging at DEBUG. Both are served by the client's ``poll``/``consume``/``flush``: call
``poll(0)`` on an AdminClient before asking :class:`ClientErrors` what went wrong.
"""

from __future__ import annotations

import logging
from typing import Any

from confluent_kafka import KafkaError

from cart_pipeline.kafka_io.errors import KafkaAuthenticationFailed, KafkaUnavailable

log = logging.getLogger("cart_pipeline.kafka_io")
librdkafka_log = logging.getLogger("cart_pipeline.kafka_io.librdkafka")

#: The broker refused who we are: retrying with the same settings cannot help.
AUTH_ERRORS = frozenset({KafkaError._AUTHENTICATION, KafkaError.SASL_AUTHENTICATION_FAILED})
#: The TLS handshake failed (certificate, CA bundle, or a plaintext listener).
SSL_ERRORS = frozenset({KafkaError._SSL})
#: The broker could not be reached; these say why better than the call's timeout does.
TRANSPORT_ERRORS = frozenset(
    {KafkaError._TRANSPORT, KafkaError._ALL_BROKERS_DOWN, KafkaError._RESOLVE}
)
SASL_VARIABLES = "CART_KAFKA_SASL_USERNAME / CART_KAFKA_SASL_PASSWORD"


class LibrdkafkaLog:
    """librdkafka's ``logger``: its lines go to Python logging at DEBUG, not to stderr (what
    matters reaches the raised error through :class:`ClientErrors`)."""

    def log(self, level: int, fmt: str, *args: Any) -> None:
        librdkafka_log.debug(fmt, *args)


LIBRDKAFKA_LOG = LibrdkafkaLog()


class ClientErrors:
    """``error_cb`` of one client: remembers the last authentication, TLS and transport error.

    The first occurrence of each kind is logged at WARNING (a running client retries on its
    own, so these are not failures yet); repeats at DEBUG. Texts never contain the password.
    """

    def __init__(self, bootstrap_servers: str, secret: str | None = None) -> None:
        self.bootstrap_servers = bootstrap_servers
        self._secret = secret
        self.auth: str | None = None
        self.ssl: str | None = None
        self.transport: str | None = None
        self.fatal: str | None = None
        self._seen: set[int] = set()

    def __call__(self, err: KafkaError) -> None:
        code, text = err.code(), self._scrub(err.str())
        if code in AUTH_ERRORS:
            self.auth = text
        elif code in SSL_ERRORS:
            self.ssl = text
        elif code in TRANSPORT_ERRORS:
            # "1/1 brokers are down" says less than the connection error that caused it.
            if code != KafkaError._ALL_BROKERS_DOWN or self.transport is None:
                self.transport = text
        elif err.fatal():
            self.fatal = f"{text} ({err.name()})"
        level = logging.DEBUG if code in self._seen else logging.WARNING
        self._seen.add(code)
        log.log(level, "Kafka client error at %s: %s (%s)", self.bootstrap_servers, text,
                err.name())  # fmt: skip

    def _scrub(self, text: str) -> str:
        return text.replace(self._secret, "***") if self._secret else text

    @property
    def definitive(self) -> bool:
        """An error retrying cannot fix (credentials, TLS) was reported."""
        return bool(self.auth or self.ssl)

    def cause(self) -> str | None:
        """The most telling error seen, as text, or None."""
        return self.auth or self.ssl or self.fatal or self.transport

    def failure(
        self, *, topic: str | None = None, partition: int | None = None
    ) -> KafkaUnavailable | None:
        """The actionable error for a rejected login or a failed TLS handshake, else None."""
        where = f"Kafka at {self.bootstrap_servers}"
        if self.auth:
            return KafkaAuthenticationFailed(
                f"{where} rejected the credentials (SASL authentication failed: "
                f"{_strip_prefix(self.auth)}): check {SASL_VARIABLES} (for Confluent Cloud: "
                "an API key and its secret) and CART_KAFKA_SASL_MECHANISM",
                topic=topic, partition=partition,
            )  # fmt: skip
        if self.ssl:
            return KafkaUnavailable(
                f"the TLS handshake with {where} failed ({self.ssl}): check "
                "CART_KAFKA_SECURITY_PROTOCOL and CART_KAFKA_SSL_CA_LOCATION",
                topic=topic, partition=partition,
            )  # fmt: skip
        return None

    @staticmethod
    def of(config: dict[str, Any]) -> ClientErrors:
        """The recorder of a config built by KafkaSettings (an empty one otherwise)."""
        found = config.get("error_cb")
        if isinstance(found, ClientErrors):
            return found
        return ClientErrors(str(config.get("bootstrap.servers", "?")))


def _strip_prefix(text: str) -> str:
    """librdkafka's "SASL authentication error: Authentication failed: X (after 1ms in state
    AUTH_REQ)" -> "X" (the rest repeats what the message around it says)."""
    for prefix in ("SASL authentication error: ", "Authentication failed: "):
        if prefix in text:
            text = text.split(prefix, 1)[1]
    return text.split(" (after ", 1)[0]
