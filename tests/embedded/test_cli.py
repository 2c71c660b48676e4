"""``cart-pipeline up / status / down`` as a user runs them: real processes, real state file."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from cart_pipeline.embedded import process as proc

CLI = [sys.executable, "-m", "cart_pipeline.cli"]


def run(env: dict[str, str], *args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*CLI, *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.fixture
def stack_env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update({
        "CART_HOME": str(tmp_path / "home"),
        "CART_KAFKA_PORT": str(proc.free_port()),
        "CART_KAFKA_CONTROLLER_PORT": str(proc.free_port()),
        "CART_KSQL_PORT": str(proc.free_port()),
        "COLUMNS": "200",
    })  # fmt: skip
    return env


def status_json(env: dict[str, str]) -> dict:
    done = run(env, "status", "--json")
    return dict(json.loads(done.stdout))


def test_up_status_down_and_data_kept(stack_env: dict[str, str]) -> None:
    try:
        done = run(stack_env, "up")
        assert done.returncode == 0, done.stderr
        state = status_json(stack_env)
        bootstrap = state["kafka"]["bootstrap_servers"]
        assert bootstrap == f"127.0.0.1:{stack_env['CART_KAFKA_PORT']}"
        assert state["kafka"]["healthy"] is True
        first_pid = state["kafka"]["pid"]
        assert proc.is_alive(first_pid)
        assert state["ksqldb"]["url"] == f"http://127.0.0.1:{stack_env['CART_KSQL_PORT']}"
        assert state["ksqldb"]["healthy"] is True
        engine_pid = state["ksqldb"]["pid"]
        assert proc.is_alive(engine_pid)

        # `up` twice does not start a second broker.
        assert run(stack_env, "up").returncode == 0
        assert status_json(stack_env)["kafka"]["pid"] == first_pid

        admin = AdminClient({"bootstrap.servers": bootstrap})
        admin.create_topics([NewTopic("kept", 1, 1)])["kept"].result(timeout=30)
        producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
        producer.produce("kept", key=b"bob", value=b'{"qty": 2}')
        assert producer.flush(30) == 0

        # `up` restarts a service of the stack that has died (each of them).
        proc.kill(first_pid)
        assert status_json(stack_env)["kafka"]["healthy"] is False
        assert run(stack_env, "up").returncode == 0
        second_pid = status_json(stack_env)["kafka"]["pid"]
        assert second_pid != first_pid and proc.is_alive(second_pid)
        proc.kill(engine_pid)
        assert status_json(stack_env)["ksqldb"]["healthy"] is False
        assert run(stack_env, "up").returncode == 0
        restarted = status_json(stack_env)["ksqldb"]
        assert restarted["healthy"] is True and restarted["pid"] != engine_pid

        done = run(stack_env, "down")
        assert done.returncode == 0 and "kafka" in done.stdout and "ksqldb" in done.stdout
        assert not proc.is_alive(second_pid) and not proc.is_alive(restarted["pid"])
        assert run(stack_env, "status").returncode == 1

        # The next `up` finds earlier topics and records intact.
        assert run(stack_env, "up").returncode == 0
        consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "kept-check",
                             "auto.offset.reset": "earliest"})  # fmt: skip
        consumer.subscribe(["kept"])
        got = []
        deadline = time.monotonic() + 30
        while not got and time.monotonic() < deadline:
            got = [m for m in consumer.consume(10, timeout=1) if m.error() is None]
        consumer.close()
        assert [(m.key(), m.value()) for m in got] == [(b"bob", b'{"qty": 2}')]
    finally:
        run(stack_env, "down")


def test_no_java_is_a_clear_error(stack_env: dict[str, str], tmp_path: Path) -> None:
    empty_bin = tmp_path / "bin"
    empty_bin.mkdir()
    stack_env.pop("JAVA_HOME", None)
    stack_env["PATH"] = str(empty_bin)
    started = time.monotonic()
    done = run(stack_env, "up", timeout=60)
    assert done.returncode == 1
    assert "Java was not found" in done.stderr and "openjdk-17" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    assert time.monotonic() - started < 30


def test_no_maven_is_a_clear_error(stack_env: dict[str, str], tmp_path: Path) -> None:
    java_only = tmp_path / "bin"
    java_only.mkdir()
    java = shutil.which("java")
    assert java, "the test machine has Java"
    (java_only / "java").symlink_to(os.path.realpath(java))
    stack_env.pop("KAFKA_HOME", None)
    stack_env["PATH"] = str(java_only)
    stack_env["CART_CACHE_DIR"] = str(tmp_path / "empty-cache")
    done = run(stack_env, "up", timeout=60)
    assert done.returncode == 1
    assert "Maven (`mvn`) was not found" in done.stderr and "KAFKA_HOME" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout
