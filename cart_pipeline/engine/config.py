"""Engine configuration: CLI flags and environment folded into one immutable Config.

Layering follows uvicorn's: the CLI only builds a Config; `Server` consumes it.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import click

ENV_PREFIX = "CART_KSQL_"
DEFAULT_PORT = 8088
DEFAULT_SERVICE_ID = "default_"
KSQL_VERSION = "0.29.0"

# ksqlDB's defaults for the properties the runtime honours.
DEFAULT_PROPERTIES: dict[str, str] = {
    "auto.offset.reset": "latest",
    "ksql.streams.commit.interval.ms": "2000",
    "ksql.streams.cache.max.bytes.buffering": "10000000",
    "ksql.query.pull.table.scan.enabled": "true",
}


class ConfigError(ValueError):
    """A configuration the engine refuses to start with."""


@dataclass(frozen=True)
class Config:
    """Everything the engine needs to start; immutable once built."""

    bootstrap_servers: str = "127.0.0.1:9092"
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    service_id: str = DEFAULT_SERVICE_ID
    state_dir: Path | None = None
    allow_remote: bool = False
    log_level: str = "info"
    #: ksqlDB's `ksql.server.command.response.timeout.ms`: how long a request carrying a
    #: `commandSequenceNumber` waits for that command before answering 50301.
    command_response_timeout_ms: int = 5000

    def __post_init__(self) -> None:
        if not self.allow_remote and not _is_loopback(self.host):
            raise ConfigError(
                f"refusing to bind non-loopback host {self.host!r}: the engine has no "
                f"authentication; pass --allow-remote (or {ENV_PREFIX}ALLOW_REMOTE=1) to do it"
            )
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"invalid port {self.port}")

    @property
    def command_topic(self) -> str:
        return f"_confluent-ksql-{self.service_id}_command_topic"

    @property
    def processing_log_topic(self) -> str:
        return f"{self.service_id}ksql_processing_log"

    def query_group_id(self, query_id: str) -> str:
        """ksqlDB's consumer group (= Kafka Streams application id) for a persistent query."""
        return f"_confluent-ksql-{self.service_id}query_{query_id}"

    def changelog_topic(self, query_id: str) -> str:
        return f"{self.query_group_id(query_id)}-Aggregate-Aggregate-Materialize-changelog"


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


def from_env(env: Mapping[str, str] | None = None, **overrides: object) -> Config:
    """Build a Config from `CART_KSQL_*` variables, then explicit (non-None) overrides."""
    env = os.environ if env is None else env
    values: dict[str, object] = {}
    if v := env.get(ENV_PREFIX + "BOOTSTRAP_SERVERS"):
        values["bootstrap_servers"] = v
    if v := env.get(ENV_PREFIX + "HOST"):
        values["host"] = v
    if v := env.get(ENV_PREFIX + "PORT"):
        values["port"] = int(v)
    if v := env.get(ENV_PREFIX + "SERVICE_ID"):
        values["service_id"] = v
    if v := env.get(ENV_PREFIX + "STATE_DIR"):
        values["state_dir"] = Path(v)
    if v := env.get(ENV_PREFIX + "LOG_LEVEL"):
        values["log_level"] = v
    values["allow_remote"] = _truthy(env.get(ENV_PREFIX + "ALLOW_REMOTE"))
    values.update({k: v for k, v in overrides.items() if v is not None and v is not False})
    return Config(**values)  # type: ignore[arg-type]


@click.command(name="cart-ksql")
@click.option(
    "--bootstrap-servers", help="Kafka bootstrap servers (env CART_KSQL_BOOTSTRAP_SERVERS)"
)
@click.option("--host", help="address to bind, loopback only by default (env CART_KSQL_HOST)")
@click.option("--port", type=int, help="port to listen on, default 8088 (env CART_KSQL_PORT)")
@click.option("--service-id", help="ksql.service.id, default 'default_' (env CART_KSQL_SERVICE_ID)")
@click.option("--state-dir", type=click.Path(path_type=Path), help="local state directory")
@click.option("--allow-remote", is_flag=True, help="allow binding a non-loopback address")
@click.option("--log-level", help="uvicorn/engine log level (default info)")
def cli(**options: object) -> None:
    """Run the embedded ksqlDB-compatible engine."""
    from cart_pipeline.engine.server.run import Server

    try:
        config = from_env(None, **options)
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from exc
    Server(config).run()
