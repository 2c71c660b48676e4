"""Issue #7: local services refuse to bind beyond loopback unless explicitly allowed.

Neither the embedded broker (PLAINTEXT) nor the engine (no authentication) may be reachable
from the network by accident: a non-loopback address must fail at once with one line naming
the opt-in, and the opt-in must really work (the service answers on a non-loopback address).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest

from cart_pipeline.embedded import KafkaBroker, KafkaConfig, StackError
from cart_pipeline.embedded import process as proc
from cart_pipeline.embedded.config import StackConfig
from cart_pipeline.embedded.stack import LocalStack
from cart_pipeline.engine.config import Config, ConfigError, from_env

pytestmark = pytest.mark.timeout(400)

ENGINE = [sys.executable, "-m", "cart_pipeline.engine"]


def outward_address() -> str | None:
    """This machine's address on its default route (no packet is sent), if not loopback."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.connect(("192.0.2.254", 9))
            address = str(sock.getsockname()[0])
        except OSError:
            return None
    return None if address.startswith("127.") else address


OUTWARD = outward_address()
needs_outward = pytest.mark.skipif(OUTWARD is None, reason="no non-loopback address here")


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.10", "example.org", ""])
def test_engine_config_refuses_non_loopback_without_opt_in(host: str) -> None:
    with pytest.raises(ConfigError, match="CART_KSQL_ALLOW_REMOTE"):
        Config(host=host)
    assert Config(host=host, allow_remote=True).host == host


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "localhost"])
def test_engine_config_accepts_loopback(host: str) -> None:
    assert from_env({"CART_KSQL_HOST": host}).host == host


def test_engine_process_refuses_with_one_actionable_line(tmp_path: Path) -> None:
    env = {
        "PATH": "/usr/bin:/bin",
        "CART_KSQL_HOST": "0.0.0.0",
        "CART_KSQL_STATE_DIR": str(tmp_path),
    }
    done = subprocess.run(ENGINE, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    output = done.stdout + done.stderr
    assert "Traceback" not in output
    errors = [line for line in output.splitlines() if "CART_KSQL_ALLOW_REMOTE" in line]
    assert len(errors) == 1 and "0.0.0.0" in errors[0], output
    assert not list(tmp_path.iterdir()), "nothing may be started or written before refusing"


def test_engine_binds_everywhere_with_the_opt_in(kafka_bootstrap: str, tmp_path: Path) -> None:
    """``0.0.0.0`` with CART_KSQL_ALLOW_REMOTE=1 starts, and answers beyond loopback."""
    port = proc.free_port()
    env = dict(os.environ)
    env.update(
        {
            "CART_KSQL_HOST": "0.0.0.0",
            "CART_KSQL_ALLOW_REMOTE": "1",
            "CART_KSQL_PORT": str(port),
            "CART_KSQL_BOOTSTRAP_SERVERS": kafka_bootstrap,
            "CART_KSQL_STATE_DIR": str(tmp_path),
            # Its own service id: it must not pick up the session engine's command topic.
            "CART_KSQL_SERVICE_ID": f"bind_{uuid.uuid4().hex[:8]}_",
        }
    )
    pid = proc.spawn(ENGINE, tmp_path / "engine.log", env, die_with_parent=True)
    try:
        hosts = ["127.0.0.1", *([OUTWARD] if OUTWARD else [])]
        deadline = time.monotonic() + 120
        answered: set[str] = set()
        while answered != set(hosts):
            assert proc.is_alive(pid), proc.tail(tmp_path / "engine.log")
            assert time.monotonic() < deadline, proc.tail(tmp_path / "engine.log")
            for host in set(hosts) - answered:
                try:
                    if httpx.get(f"http://{host}:{port}/healthcheck", timeout=2).is_success:
                        answered.add(host)
                except httpx.HTTPError:
                    pass
            time.sleep(0.3)
    finally:
        proc.stop(pid, "cart_pipeline.engine")


@pytest.mark.parametrize("host", ["0.0.0.0", "192.0.2.10", "::"])
def test_broker_refuses_non_loopback_without_opt_in(host: str, tmp_path: Path) -> None:
    broker = KafkaBroker(KafkaConfig(data_dir=tmp_path / "kafka", host=host, port=proc.free_port()))
    with pytest.raises(StackError) as refused:
        broker.start()
    message = str(refused.value)
    assert "CART_ALLOW_REMOTE_BIND" in message and host in message and "\n" not in message
    assert broker.pid is None and not (tmp_path / "kafka").exists()


def test_stack_up_refuses_non_loopback_without_opt_in(tmp_path: Path) -> None:
    """What ``cart-pipeline up`` runs: refused before any process starts."""
    stack = LocalStack(
        StackConfig(
            home=tmp_path,
            host="0.0.0.0",
            kafka_port=proc.free_port(),
            kafka_controller_port=proc.free_port(),
        )
    )
    with pytest.raises(StackError, match="CART_ALLOW_REMOTE_BIND"):
        stack.up()
    assert not (tmp_path / "kafka").exists()


@needs_outward
@pytest.mark.slow
def test_stack_binds_a_non_loopback_address_with_the_opt_in(tmp_path: Path) -> None:
    """With the opt-in, the broker and the engine both start and answer on that address."""
    assert OUTWARD is not None
    ports = [proc.free_port(OUTWARD) for _ in range(3)]
    config = StackConfig(
        home=tmp_path,
        host=OUTWARD,
        kafka_port=ports[0],
        kafka_controller_port=ports[1],
        ksql_port=ports[2],
        kafka_heap="256m",
        start_timeout_s=150,
        allow_remote=True,
    )
    stack = LocalStack(config)
    try:
        services = stack.up()
        assert all(s.healthy for s in services.values()), services
        assert services["kafka"].address == f"{OUTWARD}:{ports[0]}"
        assert services["ksqldb"].address == f"http://{OUTWARD}:{ports[2]}"
    finally:
        stack.down()
