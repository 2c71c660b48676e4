"""One real Apache Kafka broker (KRaft, combined broker + controller) on 127.0.0.1.

Used by ``cart-pipeline up`` and by the test suite alike. Data lives in a persistent
directory, so stopping and starting again keeps every topic's records.
"""

from __future__ import annotations

import base64
import os
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from confluent_kafka.admin import AdminClient

from cart_pipeline.embedded import process
from cart_pipeline.embedded.errors import PortInUse, ServiceStartError, StackError
from cart_pipeline.embedded.runtime import find_java, kafka_classpath

LOOPBACK = "127.0.0.1"

_LOG4J2 = """\
<?xml version="1.0" encoding="UTF-8"?>
<Configuration status="WARN">
  <Appenders>
    <Console name="STDOUT" target="SYSTEM_OUT">
      <PatternLayout pattern="[%d] %p %m (%c)%n"/>
    </Console>
  </Appenders>
  <Loggers>
    <Logger name="kafka.request.logger" level="WARN"/>
    <Logger name="state.change.logger" level="WARN"/>
    <Root level="INFO"><AppenderRef ref="STDOUT"/></Root>
  </Loggers>
</Configuration>
"""


@dataclass(frozen=True)
class KafkaConfig:
    """Where and how the broker runs. Ports default to Kafka's own (9092/9093)."""

    data_dir: Path
    port: int = 9092
    controller_port: int = 9093
    host: str = LOOPBACK
    heap: str = "512m"
    ready_timeout_s: float = 90.0
    stop_grace_s: float = 30.0
    allow_remote: bool = False
    #: Test sessions: stop the broker when the process that started it dies.
    tied_to_parent: bool = False
    extra_properties: dict[str, str] = field(default_factory=dict)

    @property
    def bootstrap_servers(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "broker.log"

    @property
    def marker(self) -> str:
        """Appears in the JVM's command line; identifies our broker among all processes."""
        return str(self.data_dir / "server.properties")


class KafkaBroker:
    """Format (first time only), start, wait for, and stop one broker process."""

    def __init__(self, config: KafkaConfig, pid: int | None = None) -> None:
        self.config = config
        self.pid = pid

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> KafkaBroker:
        cfg = self.config
        if cfg.host not in (LOOPBACK, "localhost") and not cfg.allow_remote:
            raise StackError(
                f"Refusing to bind Kafka to {cfg.host}: local services bind 127.0.0.1 unless "
                "CART_ALLOW_REMOTE_BIND=true is set explicitly."
            )
        if self.is_running():
            return self
        for name, port in (("Kafka", cfg.port), ("Kafka controller", cfg.controller_port)):
            if not process.port_is_free(cfg.host, port):
                env_var = "CART_KAFKA_PORT" if name == "Kafka" else "CART_KAFKA_CONTROLLER_PORT"
                raise PortInUse(name, cfg.host, port, env_var)
        java = find_java().executable
        classpath = kafka_classpath()
        cfg.data_dir.mkdir(parents=True, exist_ok=True)
        props = self._write_config_files()
        self._format_storage(java, classpath, props)
        cmd = [
            java, f"-Xmx{cfg.heap}", f"-Xms{cfg.heap}", "-XX:+UseG1GC",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={cfg.data_dir / 'log4j2.xml'}",
            "-cp", classpath, "kafka.Kafka", str(props),
        ]  # fmt: skip
        self.pid = process.spawn(
            cmd, cfg.log_path, env=_jvm_env(), die_with_parent=cfg.tied_to_parent
        )
        self.wait_ready()
        return self

    def wait_ready(self) -> None:
        """Until the broker answers a metadata request; fail at once if the JVM exits."""
        cfg = self.config
        deadline = time.monotonic() + cfg.ready_timeout_s
        admin = AdminClient({"bootstrap.servers": cfg.bootstrap_servers, "log_level": 0,
                             "logger": _quiet_logger()})  # fmt: skip
        while True:
            # No command-line check here: we spawned this pid a moment ago, and until the
            # child has exec'd java its command line is still Python's.
            if not process.is_alive(self.pid):
                raise ServiceStartError(
                    "Kafka", "the broker process exited during start-up",
                    process.tail(cfg.log_path), str(cfg.log_path),
                )  # fmt: skip
            try:
                metadata = admin.list_topics(timeout=2)
                if metadata.brokers:
                    return
            except Exception:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise ServiceStartError(
                    "Kafka", f"not ready within {cfg.ready_timeout_s:.0f}s",
                    process.tail(cfg.log_path), str(cfg.log_path),
                )  # fmt: skip
            time.sleep(0.25)

    def stop(self) -> bool:
        stopped = process.stop(self.pid, self.config.marker, self.config.stop_grace_s)
        self.pid = None
        return stopped

    def kill(self) -> None:
        """kill -9, for crash tests. Data on disk stays; ``start`` recovers it."""
        if self.pid and process.is_alive(self.pid, self.config.marker):
            process.kill(self.pid)
            deadline = time.monotonic() + 10
            while process.is_alive(self.pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            # The kernel releases a dead JVM's listening sockets a moment after the process is
            # gone; an immediate start() would otherwise report PortInUse.
            cfg = self.config
            while time.monotonic() < deadline and not all(
                process.port_is_free(cfg.host, port) for port in (cfg.port, cfg.controller_port)
            ):
                time.sleep(0.05)
        self.pid = None

    def is_running(self) -> bool:
        return process.is_alive(self.pid, self.config.marker)

    # -- files -----------------------------------------------------------------------------
    def _write_config_files(self) -> Path:
        cfg = self.config
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@{cfg.host}:{cfg.controller_port}",
            "listeners": f"PLAINTEXT://{cfg.host}:{cfg.port},CONTROLLER://{cfg.host}:"
            f"{cfg.controller_port}",
            "advertised.listeners": f"PLAINTEXT://{cfg.host}:{cfg.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": str(cfg.data_dir / "data"),
            "num.partitions": "1",
            # One broker: internal topics must be single-replica, and transactions need
            # min.isr=1 or they time out.
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "10",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": "10",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            "auto.create.topics.enable": "false",
            "log.retention.hours": "-1",
            **cfg.extra_properties,
        }
        path = cfg.data_dir / "server.properties"
        path.write_text("".join(f"{k}={v}\n" for k, v in props.items()))
        (cfg.data_dir / "log4j2.xml").write_text(_LOG4J2)
        return path

    def _format_storage(self, java: str, classpath: str, props: Path) -> None:
        """KRaft storage is formatted once; a formatted directory keeps its cluster id."""
        cfg = self.config
        if (cfg.data_dir / "data" / "meta.properties").exists():
            return
        cluster_id_file = cfg.data_dir / "cluster.id"
        if not cluster_id_file.exists():
            cluster_id_file.write_text(_cluster_id())
        cmd = [
            java, "-Xmx256m", f"-Dlog4j2.configurationFile={cfg.data_dir / 'log4j2.xml'}",
            "-cp", classpath, "kafka.tools.StorageTool", "format",
            "-t", cluster_id_file.read_text().strip(), "-c", str(props), "--ignore-formatted",
        ]  # fmt: skip
        done = subprocess.run(
            cmd, capture_output=True, text=True, timeout=120, env=_jvm_env(), check=False
        )
        if done.returncode != 0:
            raise ServiceStartError(
                "Kafka", "formatting KRaft storage failed",
                (done.stdout + done.stderr).strip()[-3000:],
            )  # fmt: skip


def _cluster_id() -> str:
    """A Kafka cluster id: 16 random bytes, URL-safe base64 without padding (22 chars)."""
    # Kafka's own generator avoids a leading "-" too: the storage tool would read it as a flag.
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


def _jvm_env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("JAVA_TOOL_OPTIONS", None)
    return env


def _quiet_logger() -> Any:
    import logging

    logger = logging.getLogger("cart_pipeline.embedded.kafka.admin")
    logger.addHandler(logging.NullHandler())
    logger.propagate = False
    return logger
