"""Serde registry: one entry per ksqlDB format, each giving key and value serdes.

A serde turns a row's key (or value) columns into Kafka bytes and back, exactly as
ksqlDB's serde for that format does. Adding a format = one class + one registry line.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Protocol, cast

import orjson

from cart_pipeline.engine.catalog.model import Column
from cart_pipeline.engine.errors import KsqlStatementError
from cart_pipeline.engine.runtime import delimited
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
        # orjson is stricter than Jackson's readTree (trailing content, 1e400): retry exactly.
        try:
            return _loads_exact(data)
        except CoercionError:
            raise CoercionError(f"Failed to deserialize JSON: {exc}") from exc


def _reject_constant(name: str) -> object:
    raise ValueError(f"{name} is not valid JSON")


_EXACT = json.JSONDecoder(parse_float=Decimal, parse_constant=_reject_constant)


def _loads_exact(data: bytes) -> object:
    """ksqlDB's mapper: Jackson ``readTree`` with USE_BIG_DECIMAL_FOR_FLOATS. Numbers stay
    exact (floats as Decimal, big integers as int) and content after the first JSON value
    is ignored (FAIL_ON_TRAILING_TOKENS is off). The slow path, for records orjson refuses
    or reads inexactly (integers beyond 64 bits come back from orjson as doubles)."""
    try:
        text = data.decode("utf-8").lstrip(" \t\r\n\ufeff")
        if not text:
            raise ValueError("No content to map due to end-of-input")
        return _EXACT.raw_decode(text)[0]
    except (UnicodeDecodeError, ValueError) as exc:
        raise CoercionError(f"Failed to deserialize JSON: {exc}") from exc


class _Inexact(Exception):
    """orjson read a number as a double where ksqlDB's exact BigDecimal would differ."""


class JsonKeySerde:
    """Single key column: the bare JSON value; several: a JSON object by column name."""

    def __init__(self, columns: Sequence[Column]) -> None:
        self.columns = tuple(columns)
        self._names = tuple(c.name for c in self.columns)  # built once, not per record

    def serialize(self, values: Sequence[object]) -> bytes | None:
        if not self.columns:
            return None
        if len(self.columns) == 1:
            return None if values[0] is None else _dumps(values[0])
        if values[0] is None and all(v is None for v in values):
            return None  # a null key, not a struct of nulls
        return _dumps(dict(zip(self._names, values, strict=True)))

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
        self._names = tuple(c.name for c in self.columns)
        self._reader = _FieldReader(self.columns)

    def serialize(self, values: Sequence[object] | None) -> bytes | None:
        if values is None:
            return None
        return _dumps(dict(zip(self._names, values, strict=True)))

    def deserialize(self, data: bytes | None) -> list[object] | None:
        if data is None:
            return None
        decoded = _loads(data)
        if decoded is None:
            return None
        try:
            return self._reader.read(decoded)
        except _Inexact:
            return self._reader.read(_loads_exact(data), exact=True)


#: Python types a decoded JSON value may already have for a column type, so that
#: coerce_json would return it unchanged, with the range that holds for integers.
_AS_IS: dict[str, tuple[type, tuple[int, int] | None]] = {
    "STRING": (str, None),
    "INTEGER": (int, (-(1 << 31), (1 << 31) - 1)),
    "BIGINT": (int, (-(1 << 63), (1 << 63) - 1)),
    "DOUBLE": (float, None),
    "BOOLEAN": (bool, None),
}


#: Column types whose value from a JSON double depends on the number's exact digits
#: (Java's intValue/longValue of a BigDecimal, BigDecimal.toString for text).
_EXACT_NUMBERS = frozenset({"INTEGER", "BIGINT", "STRING"})


class _FieldReader:
    """`_struct_fields` for the per-record path: same results, name resolution cached.

    Producers write the same field names in the same order record after record, so the
    exact-then-case-insensitive lookup of each column is resolved once per layout (the
    tuple of the object's keys) rather than per record. Values that already have their
    column's Python type (a str for STRING, an in-range int for INTEGER...) skip
    coerce_json, which would return them unchanged.
    """

    MAX_LAYOUTS = 256

    def __init__(self, columns: Sequence[Column]) -> None:
        self.columns = tuple(columns)
        self._as_is = tuple(_AS_IS.get(c.type.base) for c in self.columns)
        self._layouts: dict[tuple[str, ...], tuple[str | None, ...]] = {}

    def read(self, decoded: object, exact: bool = False) -> list[object]:
        if type(decoded) is not dict:
            return _struct_fields(decoded, self.columns)
        layout = tuple(decoded)
        names = self._layouts.get(layout)
        if names is None:
            names = self._resolve(layout)
        out: list[object] = []
        for name, as_is, col in zip(names, self._as_is, self.columns, strict=True):
            raw = None if name is None else decoded[name]
            if raw is None:
                out.append(None)
            elif (
                as_is is not None
                and type(raw) is as_is[0]
                and (as_is[1] is None or as_is[1][0] <= cast(int, raw) <= as_is[1][1])
            ):
                out.append(raw)
            else:
                if not exact and type(raw) is float and col.type.base in _EXACT_NUMBERS:
                    raise _Inexact
                try:
                    out.append(coerce_json(raw, col.type))
                except CoercionError as exc:
                    raise CoercionError(f"{exc}, path: $.{col.name}") from exc
        return out

    def _resolve(self, layout: tuple[str, ...]) -> tuple[str | None, ...]:
        """Per column, the field it reads: exact name, else last case-insensitive match."""
        names = resolve_fields(self.columns, layout)
        if len(self._layouts) >= self.MAX_LAYOUTS:
            self._layouts.clear()  # bounded: a producer with ever-changing fields
        self._layouts[layout] = names
        return names


def resolve_fields(columns: Sequence[Column], layout: tuple[str, ...]) -> tuple[str | None, ...]:
    """Per column, the field of a JSON object with keys `layout` it reads (None: absent).

    ksqlDB's lookup: the exact name, else a case-insensitive match (the last one wins).
    """
    upper = {k.upper(): k for k in layout}
    present = set(layout)
    return tuple(c.name if c.name in present else upper.get(c.name) for c in columns)


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
    "DELIMITED": delimited.DelimitedKeySerde,
}
VALUE_SERDES: dict[str, Callable[[Sequence[Column]], ValueSerde]] = {
    "JSON": JsonValueSerde,
    "KAFKA": KafkaValueSerde,
    "DELIMITED": delimited.DelimitedValueSerde,
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
    if fmt == "DELIMITED":
        delimited.check(columns, "Key")
    return KEY_SERDES[fmt](columns)


def value_serde(fmt: str, columns: Sequence[Column], features: Sequence[str] = ()) -> ValueSerde:
    """`features`: the source's value serde features (UNWRAP_SINGLES: a bare JSON value)."""
    fmt = check_format(fmt)
    if fmt == "KAFKA":
        _kafka_check(columns, "Value")
    if fmt == "DELIMITED":
        delimited.check(columns, "Value")
    if fmt == "JSON" and "UNWRAP_SINGLES" in features:
        from cart_pipeline.engine.runtime.wrapping import JsonUnwrappedValueSerde

        return JsonUnwrappedValueSerde(columns)
    return VALUE_SERDES[fmt](columns)
