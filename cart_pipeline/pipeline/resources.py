"""Dagster resources: how the pipeline reaches Kafka, ksqlDB and the alert webhook.

Each is a ``ConfigurableResource`` fed by environment variables (see ``settings_from_env``);
defaults target the embedded stack. Secrets are only ever ``dg.EnvVar`` references, so their
values never appear in the UI, run config, metadata or logs.
"""

import contextlib
import logging
import os
from typing import Any

import dagster as dg
import httpx
from pydantic import Field

from cart_pipeline.kafka_io import KafkaSettings
from cart_pipeline.ksql import KsqlClient


class KafkaResource(dg.ConfigurableResource):
    """A Kafka cluster: the embedded broker, docker-compose's, or Confluent Cloud."""

    bootstrap_servers: str = "127.0.0.1:9092"
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str = "PLAIN"
    sasl_username: str | None = None
    #: Secrets are left out of repr/str: a resolved resource (inside a run) holds the value.
    sasl_password: str | None = Field(default=None, repr=False)
    ssl_ca_location: str | None = None
    timeout_s: float = Field(default=30.0, description="Bound on each blocking Kafka call.")

    def settings(self) -> KafkaSettings:
        return KafkaSettings(
            bootstrap_servers=self.bootstrap_servers,
            security_protocol=self.security_protocol,
            sasl_mechanism=self.sasl_mechanism,
            sasl_username=self.sasl_username,
            sasl_password=self.sasl_password,
            ssl_ca_location=self.ssl_ca_location,
            timeout_s=self.timeout_s,
        )


class KsqlDBResource(dg.ConfigurableResource):
    """A ksqlDB server reached over its REST API (embedded engine or Confluent's)."""

    url: str = "http://127.0.0.1:8088"
    username: str | None = None
    password: str | None = Field(default=None, repr=False)
    timeout_s: float = Field(default=30.0, description="Bound on each REST call.")
    verify: bool = True

    def client(self) -> KsqlClient:
        return KsqlClient(
            self.url,
            username=self.username,
            password=self.password,
            timeout=self.timeout_s,
            verify=self.verify,
        )


class _RedactUrls(logging.Filter):
    """httpx logs each request's full URL at INFO; for a webhook, the URL is the secret."""

    def __init__(self) -> None:
        super().__init__()
        self.secrets: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if any(secret in message for secret in self.secrets):
            for secret in self.secrets:
                message = message.replace(secret, "<alert webhook url>")
            record.msg, record.args = message, ()
        return True


_REDACT_URLS = _RedactUrls()
logging.getLogger("httpx").addFilter(_REDACT_URLS)


class AlertWebhookResource(dg.ConfigurableResource):
    """Where data-quality alerts go: a Slack-compatible incoming webhook (optional)."""

    url: str | None = Field(default=None, repr=False)  # the URL is the webhook's secret
    timeout_s: float = 10.0

    @property
    def enabled(self) -> bool:
        return bool(self.url)

    def post(self, text: str, blocks: list[dict[str, Any]] | None = None) -> None:
        """POST ``{"text": ..., "blocks": ...}``. Errors name the status, never the URL."""
        if not self.url:
            return
        payload: dict[str, Any] = {"text": text}
        if blocks:
            payload["blocks"] = blocks
        _REDACT_URLS.secrets.add(self.url)
        with contextlib.suppress(httpx.InvalidURL):  # httpx logs the normalized form
            _REDACT_URLS.secrets.add(str(httpx.URL(self.url)))
        try:
            response = httpx.post(self.url, json=payload, timeout=self.timeout_s)
        except httpx.HTTPError as exc:
            raise AlertDeliveryError(f"alert webhook unreachable ({type(exc).__name__})") from None
        if response.status_code >= 400:
            raise AlertDeliveryError(f"alert webhook answered HTTP {response.status_code}")


class AlertDeliveryError(Exception):
    """The webhook did not take the alert (the message never contains the secret URL)."""


def _value(name: str, default: Any) -> Any:
    """``dg.EnvVar(name)`` when the variable is set (resolved at run time), else the default."""
    return dg.EnvVar(name) if os.environ.get(name) else default


def _float(name: str, default: float) -> float:
    """Numbers are not secret: read them now, with a clear error for a typo."""
    raw = os.environ.get(name)
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not a number") from None


def resources_from_env() -> dict[str, dg.ConfigurableResource]:
    """The resources of the code location, configured by CART_* environment variables."""
    return {
        "kafka": KafkaResource(
            bootstrap_servers=_value("CART_KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"),
            security_protocol=_value("CART_KAFKA_SECURITY_PROTOCOL", "PLAINTEXT"),
            sasl_mechanism=_value("CART_KAFKA_SASL_MECHANISM", "PLAIN"),
            sasl_username=_value("CART_KAFKA_SASL_USERNAME", None),
            sasl_password=_value("CART_KAFKA_SASL_PASSWORD", None),
            ssl_ca_location=_value("CART_KAFKA_SSL_CA_LOCATION", None),
            timeout_s=_float("CART_KAFKA_TIMEOUT_S", 30.0),
        ),
        "ksqldb": KsqlDBResource(
            url=_value("CART_KSQLDB_URL", "http://127.0.0.1:8088"),
            username=_value("CART_KSQLDB_USERNAME", None),
            password=_value("CART_KSQLDB_PASSWORD", None),
            timeout_s=_float("CART_KSQLDB_TIMEOUT_S", 30.0),
        ),
        "alerts": AlertWebhookResource(url=_value("CART_ALERT_WEBHOOK_URL", None)),
    }
