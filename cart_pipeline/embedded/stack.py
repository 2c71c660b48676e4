"""The local stack: a real Kafka broker plus the embedded ksqlDB engine, as background processes.

A JSON state file (``$CART_HOME/stack.json``) records each service's pid and address so that
every ``cart-pipeline`` command finds the running stack. ``up`` is idempotent: it keeps live
services and restarts dead ones; ``down`` stops them (SIGTERM, then SIGKILL after a grace period).
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import time
from dataclasses import dataclass
from typing import Any

import httpx

from cart_pipeline.embedded import process
from cart_pipeline.embedded.config import StackConfig
from cart_pipeline.embedded.errors import PortInUse, ServiceStartError
from cart_pipeline.embedded.kafka import KafkaBroker

ENGINE_MODULE = "cart_pipeline.engine"


@dataclass
class ServiceStatus:
    name: str
    pid: int | None
    running: bool
    healthy: bool
    address: str

    def as_dict(self) -> dict[str, Any]:
        key = "bootstrap_servers" if self.name == "kafka" else "url"
        return {key: self.address, "pid": self.pid, "running": self.running,
                "healthy": self.healthy}  # fmt: skip


class LocalStack:
    def __init__(self, config: StackConfig | None = None) -> None:
        self.config = config or StackConfig.from_env()

    # -- state file ------------------------------------------------------------------------
    def _load(self) -> dict[str, Any]:
        try:
            return dict(json.loads(self.config.state_file.read_text()))
        except (OSError, ValueError):
            return {}

    def _save(self, state: dict[str, Any]) -> None:
        self.config.home.mkdir(parents=True, exist_ok=True)
        tmp = self.config.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2))
        os.replace(tmp, self.config.state_file)

    # -- services --------------------------------------------------------------------------
    def _broker(self, state: dict[str, Any]) -> KafkaBroker:
        kafka_state = state.get("kafka", {})
        cfg = self.config.kafka()
        if kafka_state.get("bootstrap_servers") == cfg.bootstrap_servers:
            return KafkaBroker(cfg, kafka_state.get("pid"))
        return KafkaBroker(cfg)

    @property
    def ksql_url(self) -> str:
        return f"http://{self.config.host}:{self.config.ksql_port}"

    @staticmethod
    def engine_available() -> bool:
        try:
            return importlib.util.find_spec(f"{ENGINE_MODULE}.__main__") is not None
        except ModuleNotFoundError:
            return False

    def up(self) -> dict[str, ServiceStatus]:
        state = self._load()
        broker = self._broker(state)
        if not broker.is_running():
            broker.start()
        state["kafka"] = {"bootstrap_servers": broker.config.bootstrap_servers,
                          "pid": broker.pid}  # fmt: skip
        self._save(state)
        if self.engine_available():
            pid = state.get("ksqldb", {}).get("pid")
            if not process.is_alive(pid, ENGINE_MODULE):
                pid = self._start_engine(broker.config.bootstrap_servers)
            state["ksqldb"] = {"url": self.ksql_url, "pid": pid}
            self._save(state)
        return self.status()

    def _start_engine(self, bootstrap: str) -> int:
        cfg = self.config
        if not process.port_is_free(cfg.host, cfg.ksql_port):
            raise PortInUse("ksqlDB engine", cfg.host, cfg.ksql_port, "CART_KSQL_PORT")
        log_path = cfg.home / "ksqldb" / "engine.log"
        env = dict(os.environ)
        env.update({
            "CART_KSQL_BOOTSTRAP_SERVERS": bootstrap,
            "CART_KSQL_HOST": cfg.host,
            "CART_KSQL_PORT": str(cfg.ksql_port),
            "CART_KSQL_STATE_DIR": str(cfg.home / "ksqldb"),
        })  # fmt: skip
        if cfg.allow_remote:  # the engine has its own guard: pass the explicit opt-in on
            env["CART_KSQL_ALLOW_REMOTE"] = "1"
        pid = process.spawn([sys.executable, "-m", ENGINE_MODULE], log_path, env=env)
        deadline = time.monotonic() + cfg.start_timeout_s
        while not _healthy(self.ksql_url):
            if not process.is_alive(pid):  # just spawned: ours, whatever its argv says yet
                raise ServiceStartError(
                    "ksqlDB engine",
                    "the engine process exited during start-up",
                    process.tail(log_path),
                    str(log_path),
                )
            if time.monotonic() > deadline:
                process.stop(pid, ENGINE_MODULE)
                raise ServiceStartError("ksqlDB engine", f"not ready within "
                                        f"{cfg.start_timeout_s:.0f}s", process.tail(log_path),
                                        str(log_path))  # fmt: skip
            time.sleep(0.25)
        return pid

    def down(self) -> list[str]:
        state = self._load()
        stopped: list[str] = []
        if process.stop(state.get("ksqldb", {}).get("pid"), ENGINE_MODULE):
            stopped.append("ksqldb")
        broker = self._broker(state)
        if broker.stop():
            stopped.append("kafka")
        state.pop("ksqldb", None)
        state.pop("kafka", None)
        self._save(state)
        return stopped

    def status(self) -> dict[str, ServiceStatus]:
        state = self._load()
        broker = self._broker(state)
        kafka_running = broker.is_running()
        services = {
            "kafka": ServiceStatus(
                "kafka", broker.pid if kafka_running else None, kafka_running,
                kafka_running and _kafka_healthy(broker.config.bootstrap_servers),
                broker.config.bootstrap_servers,
            )
        }  # fmt: skip
        if self.engine_available() or "ksqldb" in state:
            pid = state.get("ksqldb", {}).get("pid")
            running = process.is_alive(pid, ENGINE_MODULE)
            services["ksqldb"] = ServiceStatus(
                "ksqldb", pid if running else None, running,
                running and _healthy(self.ksql_url), self.ksql_url,
            )  # fmt: skip
        return services


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthcheck", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _kafka_healthy(bootstrap: str) -> bool:
    from confluent_kafka.admin import AdminClient

    try:
        admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0})
        return bool(admin.list_topics(timeout=3).brokers)
    except Exception:
        return False
