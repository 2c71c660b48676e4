"""How to reach a Kafka cluster: the embedded broker, docker-compose, or Confluent Cloud.

One dataclass builds every confluent-kafka client's configuration, so security settings are
written once. Secrets stay inside ``client_config()``; ``describe()`` is what may be logged.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from cart_pipeline.kafka_io.diagnostics import LIBRDKAFKA_LOG, ClientErrors

SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")


@dataclass(frozen=True)
class KafkaSettings:
    bootstrap_servers: str = "127.0.0.1:9092"
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str = "PLAIN"
    sasl_username: str | None = None
    sasl_password: str | None = field(default=None, repr=False)
    ssl_ca_location: str | None = None
    #: Bound on any single blocking Kafka call (metadata, transactions, flush).
    timeout_s: float = 30.0
    client_id: str = "cart_pipeline"

    def __post_init__(self) -> None:
        if not self.bootstrap_servers.strip():
            raise ValueError("Kafka bootstrap servers are empty; set CART_KAFKA_BOOTSTRAP_SERVERS.")
        if self.security_protocol.upper() not in SECURITY_PROTOCOLS:
            raise ValueError(
                f"Unknown Kafka security protocol {self.security_protocol!r}; "
                f"use one of {', '.join(SECURITY_PROTOCOLS)} (CART_KAFKA_SECURITY_PROTOCOL)."
            )
        if self.security_protocol.upper().startswith("SASL") and not (
            self.sasl_username and self.sasl_password
        ):
            raise ValueError(
                f"{self.security_protocol} needs CART_KAFKA_SASL_USERNAME and "
                "CART_KAFKA_SASL_PASSWORD (for Confluent Cloud: an API key and secret)."
            )
        if self.timeout_s <= 0:
            raise ValueError("The Kafka timeout must be positive (CART_KAFKA_TIMEOUT_S).")

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> KafkaSettings:
        env = dict(os.environ if env is None else env)
        return cls(
            bootstrap_servers=env.get("CART_KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"),
            security_protocol=env.get("CART_KAFKA_SECURITY_PROTOCOL", "PLAINTEXT"),
            sasl_mechanism=env.get("CART_KAFKA_SASL_MECHANISM", "PLAIN"),
            sasl_username=env.get("CART_KAFKA_SASL_USERNAME") or None,
            sasl_password=env.get("CART_KAFKA_SASL_PASSWORD") or None,
            ssl_ca_location=env.get("CART_KAFKA_SSL_CA_LOCATION") or None,
            timeout_s=float(env.get("CART_KAFKA_TIMEOUT_S", "30")),
        )

    def client_config(self, **overrides: Any) -> dict[str, Any]:
        """Base configuration for any confluent-kafka client (includes secrets: never log it).

        Each call brings a fresh :class:`ClientErrors` as ``error_cb`` (``ClientErrors.of``
        finds it) so a failed call can name its cause, and librdkafka's log goes to Python
        logging instead of stderr.
        """
        config: dict[str, Any] = {
            "bootstrap.servers": self.bootstrap_servers,
            "client.id": self.client_id,
            "security.protocol": self.security_protocol.upper(),
            # Fail a blocking call instead of retrying forever against a dead address.
            "socket.connection.setup.timeout.ms": int(min(self.timeout_s, 30) * 1000),
            "log_level": 3,
            "error_cb": ClientErrors(self.bootstrap_servers, self.sasl_password),
            "logger": LIBRDKAFKA_LOG,
        }
        if self.security_protocol.upper().startswith("SASL"):
            config.update({
                "sasl.mechanisms": self.sasl_mechanism,
                "sasl.username": self.sasl_username,
                "sasl.password": self.sasl_password,
            })  # fmt: skip
        if self.ssl_ca_location:
            config["ssl.ca.location"] = self.ssl_ca_location
        config.update(overrides)
        return config

    def producer_config(self, transactional_id: str | None = None, **overrides: Any) -> dict:
        """Idempotent, acks=all, Java-compatible key partitioning (murmur2, like ksqlDB)."""
        config = self.client_config(
            **{
                "enable.idempotence": True,
                "acks": "all",
                # librdkafka's default (crc32) puts keys on other partitions than Java clients
                # and ksqlDB do; murmur2_random matches Java's default partitioner.
                "partitioner": "murmur2_random",
                "linger.ms": 20,
                "batch.size": 1_000_000,
                "compression.type": "lz4",
                "message.timeout.ms": int(self.timeout_s * 1000 * 4),
            }
        )
        if transactional_id:
            config["transactional.id"] = transactional_id
            config["transaction.timeout.ms"] = 60_000
            # librdkafka refuses a message timeout longer than the transaction timeout.
            config["message.timeout.ms"] = min(config["message.timeout.ms"], 60_000)
        config.update(overrides)
        return config

    def consumer_config(self, group_id: str, **overrides: Any) -> dict[str, Any]:
        """read_committed, manual commits: aborted transactions are never seen."""
        config = self.client_config(
            **{
                "group.id": group_id,
                "isolation.level": "read_committed",
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "auto.offset.reset": "earliest",
                "enable.partition.eof": False,
            }
        )
        config.update(overrides)
        return config

    def describe(self) -> dict[str, str]:
        """Safe to log and to put in metadata: no secrets."""
        described = {
            "bootstrap_servers": self.bootstrap_servers,
            "security_protocol": self.security_protocol.upper(),
        }
        if self.sasl_username:
            described["sasl_mechanism"] = self.sasl_mechanism
        return described
