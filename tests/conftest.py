"""Session-wide real services: one Kafka broker and one embedded ksqlDB engine for all tests.

Both are started by the same launcher users run (``cart_pipeline.embedded``), on free ports
bound to 127.0.0.1, in a temporary directory. Tests use unique topic and source names.
"""

from __future__ import annotations

import os
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from cart_pipeline.embedded import KafkaBroker, KafkaConfig
from cart_pipeline.embedded import process as proc


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaBroker]:
    data_dir = tmp_path_factory.mktemp("kafka")
    broker = KafkaBroker(
        KafkaConfig(
            data_dir=data_dir,
            port=proc.free_port(),
            controller_port=proc.free_port(),
            tied_to_parent=True,
        )
    )
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def kafka_bootstrap(kafka_broker: KafkaBroker) -> str:
    return kafka_broker.config.bootstrap_servers


@pytest.fixture
def unique_name() -> str:
    """A topic/source name no other test uses (upper-case safe for ksqlDB identifiers)."""
    return f"t_{uuid.uuid4().hex[:12]}"


class EngineProcess:
    """The embedded ksqlDB engine as a real subprocess (restartable, killable for crash tests)."""

    def __init__(self, bootstrap: str, state_dir: Path, service_id: str | None = None) -> None:
        self.bootstrap, self.state_dir, self.service_id = bootstrap, state_dir, service_id
        self.port = proc.free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.pid: int | None = None
        self.log_path = state_dir / "engine.log"

    def start(self, timeout_s: float = 90.0) -> EngineProcess:
        env = dict(os.environ)
        env.update({
            "CART_KSQL_BOOTSTRAP_SERVERS": self.bootstrap,
            "CART_KSQL_HOST": "127.0.0.1",
            "CART_KSQL_PORT": str(self.port),
            "CART_KSQL_STATE_DIR": str(self.state_dir),
        })  # fmt: skip
        if self.service_id:
            env["CART_KSQL_SERVICE_ID"] = self.service_id
        self.pid = proc.spawn(
            [sys.executable, "-m", "cart_pipeline.engine"], self.log_path, env,
            die_with_parent=True,
        )  # fmt: skip
        deadline = time.monotonic() + timeout_s
        while True:
            if not proc.is_alive(self.pid):
                raise RuntimeError(f"engine exited during start-up:\n{proc.tail(self.log_path)}")
            try:
                if httpx.get(f"{self.url}/healthcheck", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"engine not ready in {timeout_s}s:\n{proc.tail(self.log_path)}")
            time.sleep(0.2)

    def stop(self) -> None:
        proc.stop(self.pid, "cart_pipeline.engine")
        self.pid = None

    def kill(self) -> None:
        if self.pid:
            proc.kill(self.pid)
            self.pid = None


@pytest.fixture(scope="session")
def ksql_engine(
    kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[EngineProcess]:
    engine = EngineProcess(kafka_bootstrap, tmp_path_factory.mktemp("ksqldb")).start()
    try:
        yield engine
    finally:
        engine.stop()


@pytest.fixture(scope="session")
def ksqldb_url(ksql_engine: EngineProcess) -> str:
    return ksql_engine.url
