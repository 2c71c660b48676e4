"""Settings of the local (embedded) stack, read from environment variables.

=============================  =====================================  ==========================
variable                       meaning                                default
=============================  =====================================  ==========================
CART_HOME                      state file, broker and engine data     ~/.local/share/cart_pipeline
CART_CACHE_DIR                 Maven-resolved Kafka jars              ~/.cache/cart_pipeline
CART_KAFKA_PORT                broker port on 127.0.0.1               9092
CART_KAFKA_CONTROLLER_PORT     KRaft controller port                  9093
CART_KAFKA_HEAP                broker JVM heap                        512m
CART_KSQL_PORT                 embedded ksqlDB engine port            8088
CART_STACK_START_TIMEOUT_S     bound on each service's start-up       90
CART_ALLOW_REMOTE_BIND         allow binding beyond loopback          false
=============================  =====================================  ==========================
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from cart_pipeline.embedded.errors import StackError
from cart_pipeline.embedded.kafka import LOOPBACK, KafkaConfig


@dataclass(frozen=True)
class StackConfig:
    home: Path
    kafka_port: int = 9092
    kafka_controller_port: int = 9093
    kafka_heap: str = "512m"
    ksql_port: int = 8088
    host: str = LOOPBACK
    start_timeout_s: float = 90.0
    allow_remote: bool = False

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> StackConfig:
        env = dict(os.environ if env is None else env)
        default_home = Path(env.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
        return cls(
            home=Path(env.get("CART_HOME") or default_home / "cart_pipeline").expanduser(),
            kafka_port=_int(env, "CART_KAFKA_PORT", 9092),
            kafka_controller_port=_int(env, "CART_KAFKA_CONTROLLER_PORT", 9093),
            kafka_heap=env.get("CART_KAFKA_HEAP", "512m"),
            ksql_port=_int(env, "CART_KSQL_PORT", 8088),
            start_timeout_s=float(_int(env, "CART_STACK_START_TIMEOUT_S", 90)),
            allow_remote=env.get("CART_ALLOW_REMOTE_BIND", "").lower() in ("1", "true", "yes"),
        )

    @property
    def state_file(self) -> Path:
        return self.home / "stack.json"

    def kafka(self) -> KafkaConfig:
        return KafkaConfig(
            data_dir=self.home / "kafka",
            port=self.kafka_port,
            controller_port=self.kafka_controller_port,
            host=self.host,
            heap=self.kafka_heap,
            ready_timeout_s=self.start_timeout_s,
            allow_remote=self.allow_remote,
        )


def _int(env: dict[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except ValueError:
        raise StackError(f"{name}={raw!r} is not a whole number.") from None
    if not 0 < value < 65536 and name.endswith("PORT"):
        raise StackError(f"{name}={raw} is not a valid TCP port (1-65535).")
    return value
