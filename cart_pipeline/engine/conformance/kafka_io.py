"""Records in and out of the broker in the formats the cases declare (JSON, KAFKA, DELIMITED)."""

from __future__ import annotations

import struct
import time
from dataclasses import dataclass
from typing import Any

import orjson
from confluent_kafka import OFFSET_BEGINNING, KafkaError, TopicPartition

from cart_pipeline.engine import kafka
from cart_pipeline.engine.sql import ast, parse_statements

_PACK = {"INTEGER": ">i", "BIGINT": ">q", "DOUBLE": ">d"}


@dataclass(frozen=True)
class TopicSchema:
    key_format: str
    value_format: str
    key_types: tuple[str, ...]  # base type names of the key columns
    value_types: tuple[str, ...]
    value_names: tuple[str, ...] = ()
    partitions: int | None = None


def _base(t: ast.SqlType) -> str:
    if isinstance(t, ast.PrimitiveType):
        return t.name
    if isinstance(t, ast.DecimalType):
        return "DECIMAL"
    return type(t).__name__.replace("Type", "").upper()


def declared_topics(statements: list[str]) -> dict[str, TopicSchema]:
    """Topic -> schema of the first CREATE STREAM/TABLE (with columns) over it."""
    out: dict[str, TopicSchema] = {}
    for text in statements:
        try:
            parsed = parse_statements(text)
        except Exception:
            continue
        for ps in parsed:
            st = ps.statement
            if not isinstance(st, ast.CreateSource):
                continue
            props = {
                k: getattr(v, "value", None) for k, v in ast.property_map(st.properties).items()
            }
            topic = props.get("KAFKA_TOPIC")
            if not isinstance(topic, str) or topic in out:
                continue
            fmt = props.get("FORMAT")
            keys = [e for e in st.elements if e.constraint in ("KEY", "PRIMARY KEY")]
            vals = [e for e in st.elements if e.constraint not in ("KEY", "PRIMARY KEY")]
            parts = props.get("PARTITIONS")
            out[topic] = TopicSchema(
                str(props.get("KEY_FORMAT") or fmt or "KAFKA").upper(),
                str(props.get("VALUE_FORMAT") or fmt or "JSON").upper(),
                tuple(_base(e.type) for e in keys),
                tuple(_base(e.type) for e in vals),
                tuple(e.name for e in vals),
                int(parts) if isinstance(parts, int) else None,
            )
    return out


def _kafka_bytes(value: object, base: str | None) -> bytes:
    if base in _PACK:
        return struct.pack(_PACK[base], float(value) if base == "DOUBLE" else value)  # type: ignore[arg-type]
    if base is None and isinstance(value, int) and not isinstance(value, bool):
        return struct.pack(">q", value)
    return str(value).encode()


def _delimited(value: object) -> bytes:
    if isinstance(value, str):
        return value.encode()
    return orjson.dumps(value)


def encode(value: object, fmt: str, types: tuple[str, ...]) -> bytes | None:
    if value is None:
        return None
    if fmt == "KAFKA":
        return _kafka_bytes(value, types[0] if types else None)
    if fmt == "DELIMITED":
        return _delimited(value)
    return orjson.dumps(value)


def decode(data: bytes | None, fmt: str, types: tuple[str, ...]) -> object:
    if data is None:
        return None
    if fmt == "KAFKA":
        if not types:
            return None
        base = types[0]
        if base in _PACK and len(data) == struct.calcsize(_PACK[base]):
            return struct.unpack(_PACK[base], data)[0]
        return data.decode("utf-8", "replace")
    if fmt == "DELIMITED":
        return data.decode("utf-8", "replace")
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return data.decode("utf-8", "replace")


def produce(
    bootstrap: str, records: list[tuple[str, bytes | None, bytes | None, int | None]]
) -> None:
    p = kafka.producer(bootstrap, None, **{"linger.ms": 0})
    for topic, key, value, ts in records:
        if ts is None:
            p.produce(topic, key=key, value=value)
        else:
            p.produce(topic, key=key, value=value, timestamp=ts)
    if p.flush(30):
        raise RuntimeError("input records not acknowledged in 30s")


@dataclass(frozen=True)
class OutRecord:
    key: bytes | None
    value: bytes | None
    timestamp: int
    partition: int
    offset: int


def read_topic(bootstrap: str, topic: str, timeout: float = 15.0) -> list[OutRecord]:
    """Every committed record of `topic`, partition by partition, in offset order."""
    admin = kafka.admin(bootstrap)
    n = kafka.topic_partitions(admin, topic)
    if not n:
        return []
    c = kafka.consumer(bootstrap)
    out: list[OutRecord] = []
    try:
        ends = kafka.end_offsets(c, topic, n)
        pending = {p for p, (lo, hi) in ends.items() if hi > lo}
        if not pending:
            return []
        c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in pending])
        deadline = time.monotonic() + timeout
        while pending and time.monotonic() < deadline:
            for msg in c.consume(num_messages=500, timeout=0.2):
                err = msg.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        pending.discard(msg.partition() or 0)
                    continue
                out.append(
                    OutRecord(
                        msg.key(),
                        msg.value(),
                        msg.timestamp()[1],
                        msg.partition() or 0,
                        msg.offset() or 0,
                    )
                )
    finally:
        c.close()
    out.sort(key=lambda r: (r.partition, r.offset))
    return out


def data_ends(bootstrap: str, topic: str) -> dict[int, int]:
    """Per partition: the offset after the last data record (transaction markers excluded)."""
    ends: dict[int, int] = {}
    for rec in read_topic(bootstrap, topic):
        ends[rec.partition] = max(ends.get(rec.partition, 0), rec.offset + 1)
    return ends


def as_json(data: Any) -> Any:
    return data
