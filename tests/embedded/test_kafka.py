"""The embedded broker is real Kafka: records round-trip, survive restarts, bad starts fail fast."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from cart_pipeline.embedded import KafkaBroker, KafkaConfig, PortInUse, ServiceStartError
from cart_pipeline.embedded import process as proc


def _create_topic(bootstrap: str, topic: str, partitions: int = 1) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, partitions, 1)])[topic].result(timeout=30)


def _produce(bootstrap: str, topic: str, records: list[tuple[bytes, bytes]]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all"})
    for key, value in records:
        producer.produce(topic, key=key, value=value)
    assert producer.flush(30) == 0


def _consume_all(bootstrap: str, topic: str, expected: int, timeout_s: float = 30) -> list:
    consumer = Consumer({
        "bootstrap.servers": bootstrap, "group.id": f"g-{uuid.uuid4().hex}",
        "auto.offset.reset": "earliest", "isolation.level": "read_committed",
        "enable.auto.commit": False,
    })  # fmt: skip
    consumer.subscribe([topic])
    got: list = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(got) < expected and time.monotonic() < deadline:
            for msg in consumer.consume(num_messages=500, timeout=0.5):
                assert msg.error() is None, msg.error()
                got.append((msg.key(), msg.value(), msg.partition(), msg.offset()))
    finally:
        consumer.close()
    return got


def test_round_trip_through_confluent_kafka(kafka_bootstrap: str, unique_name: str) -> None:
    _create_topic(kafka_bootstrap, unique_name, partitions=3)
    records = [(f"k{i % 7}".encode(), f'{{"n": {i}}}'.encode()) for i in range(300)]
    _produce(kafka_bootstrap, unique_name, records)
    got = _consume_all(kafka_bootstrap, unique_name, len(records))
    assert sorted((k, v) for k, v, _, _ in got) == sorted(records)
    # Same key, same partition: order per key is kept.
    by_key: dict[bytes, set[int]] = {}
    for key, _, partition, _ in got:
        by_key.setdefault(key, set()).add(partition)
    assert all(len(parts) == 1 for parts in by_key.values())


def test_data_survives_a_restart(tmp_path: Path) -> None:
    broker = KafkaBroker(
        KafkaConfig(tmp_path / "k", port=proc.free_port(), controller_port=proc.free_port())
    ).start()
    try:
        bootstrap = broker.config.bootstrap_servers
        _create_topic(bootstrap, "durable")
        _produce(bootstrap, "durable", [(b"bob", b"pants"), (b"alice", b"hats")])
        first_pid = broker.pid
        assert broker.stop()
        assert not proc.is_alive(first_pid)
        broker.start()
        assert broker.pid != first_pid
        got = _consume_all(bootstrap, "durable", 2)
        assert [(k, v) for k, v, _, _ in got] == [(b"bob", b"pants"), (b"alice", b"hats")]
    finally:
        broker.stop()


def test_port_taken_fails_fast_and_clearly(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        broker = KafkaBroker(KafkaConfig(tmp_path, port=port, controller_port=proc.free_port()))
        started = time.monotonic()
        with pytest.raises(
            PortInUse, match=rf"127.0.0.1:{port} is already in use.*CART_KAFKA_PORT"
        ):
            broker.start()
        assert time.monotonic() - started < 10
        assert broker.pid is None


def test_jvm_that_exits_at_start_reports_its_log(tmp_path: Path) -> None:
    broker = KafkaBroker(
        KafkaConfig(
            tmp_path,
            port=proc.free_port(),
            controller_port=proc.free_port(),
            heap="not-a-size",
            ready_timeout_s=60,
        )
    )
    started = time.monotonic()
    with pytest.raises(ServiceStartError) as info:
        broker.start()
    assert "exited during start-up" in str(info.value)
    assert "heap" in info.value.log_tail.lower()
    assert time.monotonic() - started < 30


@pytest.mark.skipif(shutil.which("setpriv") is None, reason="needs util-linux setpriv")
def test_broker_tied_to_a_killed_parent_stops(tmp_path: Path) -> None:
    """A test run killed with -9 must not leave its broker behind."""
    script = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from cart_pipeline.embedded import KafkaBroker, KafkaConfig\n"
        "b = KafkaBroker(KafkaConfig(Path(sys.argv[1]), port=int(sys.argv[2]),\n"
        "    controller_port=int(sys.argv[3]), tied_to_parent=True)).start()\n"
        "print(b.pid, flush=True)\n"
        "time.sleep(600)\n"
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", script, str(tmp_path), str(proc.free_port()),
         str(proc.free_port())],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert parent.stdout is not None
        broker_pid = int(parent.stdout.readline())
        assert proc.is_alive(broker_pid)
    finally:
        parent.kill()
        parent.wait(timeout=30)
    deadline = time.monotonic() + 60
    while proc.is_alive(broker_pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not proc.is_alive(broker_pid), "the broker outlived the process that started it"
