"""Serde registry: one entry per ksqlDB format, each giving key and value serdes.

A serde turns a row's key (or value) columns into Kafka bytes and back, exactly as
ksqlDB's serde for that format does. Adding a format = one class + one registry line.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from typing import Protocol

import orjson

from cart_pipeline.engine.catalog.model import Column
from cart_pipeline.engine.errors import KsqlStatementError
from cart_pipeline.engine.types import CoercionError, coerce_json


class KeySerde(Protocol):
    def serialize(self, values: Sequence[object]) -> bytes | None: ...

    def deserialize(self, data: bytes | None) -> list[object]: ...


class ValueSerde(Protocol):
    def serialize(self, values: Sequence[object] | None) -> bytes | None: ...

    def deserialize(self, data: bytes | None) -> list[object] | None: ...


def _persistence(columns: Sequence[Column]) -> str:
    return "[" + ", ".join(c.schema_text() for c in columns) + "]"


# --- JSON ---------------------------------------------------------------------------------


def _dumps(obj: object) -> bytes:
    return orjson.dumps(obj)


def _loads(data: bytes) -> object:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise CoercionError(f"Failed to deserialize JSON: {exc}") from exc


class JsonKeySerde:
    """Single key column: the bare JSON value; several: a JSON object by column name."""

    def __init__(self, columns: Sequence[Column]) -> None:
        self.columns = tuple(columns)

    def serialize(self, values: Sequence[object]) -> bytes | None:
        if not self.columns:
            return None
        if len(self.columns) == 1:
            return None if values[0] is None else _dumps(values[0])
        return _dumps({c.name: v for c, v in zip(self.columns, values, strict=True)})

    def deserialize(self, data: bytes | None) -> list[object]:
        if not self.columns:
            return []
        if data is None:
            return [None] * len(self.columns)
        decoded = _loads(data)
        if len(self.columns) == 1:
            return [coerce_json(decoded, self.columns[0].type)]
        return _struct_fields(decoded, self.columns)


class JsonValueSerde:
    """ksqlDB's JSON value: an object keyed by column name (single values wrapped too)."""

    def __init__(self, columns: Sequence[Column]) -> None:
        self.columns = tuple(columns)

    def serialize(self, values: Sequence[object] | None) -> bytes | None:
        if values is None:
            return None
        return _dumps({c.name: v for c, v in zip(self.columns, values, strict=True)})

    def deserialize(self, data: bytes | None) -> list[object] | None:
        if data is None:
            return None
        decoded = _loads(data)
        if decoded is None:
            return None
        return _struct_fields(decoded, self.columns)


def _struct_fields(decoded: object, columns: Sequence[Column]) -> list[object]:
    """Field lookup exact, then case-insensitive; extra fields ignored, missing ones NULL."""
    if not isinstance(decoded, dict):
        kind = "ArrayNode" if isinstance(decoded, list) else type(decoded).__name__
        inner = ", ".join(f"`{c.name}` {c.type}" for c in columns)
        raise CoercionError(
            f"Can't convert type. sourceType: {kind}, requiredType: STRUCT<{inner}>"
        )
    upper: dict[str, object] | None = None
    out: list[object] = []
    for col in columns:
        if col.name in decoded:
            raw = decoded[col.name]
        else:
            if upper is None:
                upper = {k.upper(): v for k, v in decoded.items()}
            raw = upper.get(col.name)
        try:
            out.append(coerce_json(raw, col.type))
        except CoercionError as exc:
            raise CoercionError(f"{exc}, path: $.{col.name}") from exc
    return out


# --- KAFKA --------------------------------------------------------------------------------

_KAFKA_CODECS: dict[str, tuple[Callable[[object], bytes], Callable[[bytes], object], int]] = {
    "STRING": (lambda v: str(v).encode(), lambda b: b.decode("utf-8"), -1),
    "INTEGER": (lambda v: struct.pack(">i", v), lambda b: struct.unpack(">i", b)[0], 4),
    "BIGINT": (lambda v: struct.pack(">q", v), lambda b: struct.unpack(">q", b)[0], 8),
    "DOUBLE": (lambda v: struct.pack(">d", v), lambda b: struct.unpack(">d", b)[0], 8),
}
_KAFKA_DESERIALIZER = {"INTEGER": "Integer", "BIGINT": "Long", "DOUBLE": "Double"}


def _kafka_check(columns: Sequence[Column], what: str) -> None:
    if len(columns) > 1:
        raise KsqlStatementError(
            f"{what} format does not support schema.\nformat: KAFKA\n"
            f"schema: Persistence{{columns={_persistence(columns)}, features=[]}}\n"
            f"reason: The 'KAFKA' format only supports a single field. "
            f"Got: {_persistence(columns)}"
        )
    for col in columns:
        if col.type.base not in _KAFKA_CODECS:
            raise KsqlStatementError(
                f"{what} format does not support schema.\nformat: KAFKA\n"
                f"schema: Persistence{{columns={_persistence(columns)}, features=[]}}\n"
                f"reason: The 'KAFKA' format does not support type '{col.type.base}'"
            )


class KafkaSerde:
    """The KAFKA format: one primitive column in Kafka's own serializer encoding."""

    def __init__(self, columns: Sequence[Column]) -> None:
        self.columns = tuple(columns)

    def _encode(self, value: object) -> bytes | None:
        if value is None:
            return None
        return _KAFKA_CODECS[self.columns[0].type.base][0](value)

    def _decode(self, data: bytes) -> object:
        base = self.columns[0].type.base
        _, decode, size = _KAFKA_CODECS[base]
        if size > 0 and len(data) != size:
            raise CoercionError(
                f"Size of data received by {_KAFKA_DESERIALIZER[base]}Deserializer is not {size}"
            )
        try:
            return decode(data)
        except UnicodeDecodeError as exc:
            raise CoercionError(str(exc)) from exc


class KafkaKeySerde(KafkaSerde):
    def serialize(self, values: Sequence[object]) -> bytes | None:
        return self._encode(values[0]) if self.columns else None

    def deserialize(self, data: bytes | None) -> list[object]:
        if not self.columns:
            return []
        return [None if data is None else self._decode(data)]


class KafkaValueSerde(KafkaSerde):
    def serialize(self, values: Sequence[object] | None) -> bytes | None:
        if values is None:
            return None
        return self._encode(values[0]) if self.columns else b""

    def deserialize(self, data: bytes | None) -> list[object] | None:
        if data is None:
            return None
        if not self.columns:
            return []
        return [self._decode(data)]


# --- registry -----------------------------------------------------------------------------

KEY_SERDES: dict[str, Callable[[Sequence[Column]], KeySerde]] = {
    "JSON": JsonKeySerde,
    "KAFKA": KafkaKeySerde,
}
VALUE_SERDES: dict[str, Callable[[Sequence[Column]], ValueSerde]] = {
    "JSON": JsonValueSerde,
    "KAFKA": KafkaValueSerde,
}
KNOWN_FORMATS = frozenset(
    {"JSON", "KAFKA", "AVRO", "PROTOBUF", "JSON_SR", "PROTOBUF_NOSR", "DELIMITED", "NONE"}
)


def check_format(fmt: str) -> str:
    upper = fmt.upper()
    if upper not in KNOWN_FORMATS:
        raise KsqlStatementError(f"Unknown format: {upper}")
    if upper not in VALUE_SERDES:
        raise KsqlStatementError(f"Unsupported by the embedded engine: format {upper}")
    return upper


def key_serde(fmt: str, columns: Sequence[Column]) -> KeySerde:
    fmt = check_format(fmt)
    if fmt == "KAFKA":
        _kafka_check(columns, "Key")
    return KEY_SERDES[fmt](columns)


def value_serde(fmt: str, columns: Sequence[Column]) -> ValueSerde:
    fmt = check_format(fmt)
    if fmt == "KAFKA":
        _kafka_check(columns, "Value")
    return VALUE_SERDES[fmt](columns)
