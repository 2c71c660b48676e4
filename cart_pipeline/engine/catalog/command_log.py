"""The command topic: the durable, ordered log of catalog-changing statements.

Like ksqlDB, each command is written in its own transaction (so a second engine with the
same service id is fenced), and its offset is the statement's `commandSequenceNumber`;
query ids derive from it. On start the whole topic is replayed to rebuild the catalog.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import orjson
from confluent_kafka import OFFSET_BEGINNING, KafkaError, TopicPartition

from cart_pipeline.engine import kafka
from cart_pipeline.engine.errors import SERVER_ERROR, KsqlError


@dataclass(frozen=True)
class Command:
    offset: int
    statement: str
    properties: dict[str, str]


class CommandLog:
    def __init__(self, bootstrap: str, topic: str, service_id: str) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.service_id = service_id
        self._producer = kafka.producer(bootstrap, transactional_id=f"{service_id}_command_log")
        self._lock = threading.Lock()
        self._initialised = False

    def ensure(self) -> None:
        """Create the topic (1 partition, kept forever) and fence any older writer."""
        kafka.ensure_topic(
            kafka.admin(self.bootstrap),
            self.topic,
            1,
            1,
            {"retention.ms": "-1", "cleanup.policy": "delete"},
        )
        if not self._initialised:
            self._producer.init_transactions(60)
            self._initialised = True

    def append(self, statement: str, properties: dict[str, str]) -> int:
        """Durably append one command; returns its offset (the command sequence number)."""
        payload = orjson.dumps({"statement": statement, "streamsProperties": properties})
        result: dict[str, object] = {}

        def on_delivery(err: KafkaError | None, msg: object) -> None:
            result["err"] = err
            result["msg"] = msg

        with self._lock:
            self._producer.begin_transaction()
            self._producer.produce(self.topic, value=payload, on_delivery=on_delivery)
            self._producer.flush(30)
            self._producer.commit_transaction(30)
        if result.get("err") is not None or "msg" not in result:
            raise KsqlError(
                f"Could not write to the command topic: {result.get('err')}", SERVER_ERROR
            )
        return int(result["msg"].offset())  # type: ignore[attr-defined]

    def read_all(self, timeout: float = 60.0) -> list[Command]:
        """Every committed command, in order."""
        c = kafka.consumer(self.bootstrap)
        commands: list[Command] = []
        try:
            lo, hi = c.get_watermark_offsets(
                TopicPartition(self.topic, 0), timeout=10, cached=False
            )
            if hi <= lo:
                return commands
            c.assign([TopicPartition(self.topic, 0, OFFSET_BEGINNING)])
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                done = False
                for msg in c.consume(num_messages=500, timeout=0.5):
                    err = msg.error()
                    if err is not None:
                        if err.code() == KafkaError._PARTITION_EOF:
                            done = True
                        continue
                    data = orjson.loads(msg.value() or b"{}")
                    commands.append(
                        Command(
                            msg.offset() or 0, data["statement"], data.get("streamsProperties", {})
                        )
                    )
                if done:
                    return commands
            raise KsqlError("Timed out replaying the command topic", SERVER_ERROR)
        finally:
            c.close()
