"""The DELIMITED format: one CSV line (comma-delimited), as ksqlDB writes it with Commons CSV.

NULL is an empty field; strings are quoted only when Commons CSV's MINIMAL mode would quote
them. Nested types are not allowed in this format.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from decimal import Decimal

from cart_pipeline.engine.catalog.model import Column
from cart_pipeline.engine.errors import KsqlStatementError
from cart_pipeline.engine.types import CoercionError

_PRIMITIVES = ("STRING", "INTEGER", "BIGINT", "DOUBLE", "BOOLEAN")


def java_double(v: float) -> str:
    """Java's Double.toString (shortest repr; scientific outside [1e-3, 1e7))."""
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "Infinity" if v > 0 else "-Infinity"
    if v == 0:
        return "-0.0" if math.copysign(1, v) < 0 else "0.0"
    if 1e-3 <= abs(v) < 1e7:
        text = repr(v)
        return text if "." in text else text + ".0"
    sign, digits, exponent = Decimal(repr(v)).as_tuple()
    assert isinstance(exponent, int)
    body = "".join(map(str, digits)).rstrip("0") or "0"
    exp = len(digits) + exponent - 1
    return f"{'-' if sign else ''}{body[0]}.{body[1:] or '0'}E{exp}"


def _text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return java_double(value)
    return str(value)


def _needs_quotes(text: str) -> bool:
    if not text:
        return False
    if ord(text[0]) <= ord("#"):
        return True
    if any(c in text for c in ',"\r\n'):
        return True
    return ord(text[-1]) <= ord(" ")


def _field(value: object) -> str:
    if value is None:
        return ""
    text = _text(value)
    if _needs_quotes(text):
        return '"' + text.replace('"', '""') + '"'
    return text


def _parse(raw: str, sql_type: str) -> object:
    if raw == "":
        return None
    try:
        if sql_type == "STRING":
            return raw
        if sql_type in ("INTEGER", "BIGINT"):
            return int(raw)
        if sql_type == "DOUBLE":
            return float(raw)
        if sql_type == "BOOLEAN":
            return raw.strip().lower() == "true"
    except ValueError as exc:
        raise CoercionError(f"Failed to deserialize delimited value: {exc}") from exc
    raise CoercionError(f"Type is not supported: {sql_type}")


def check(columns: Sequence[Column], what: str) -> None:
    for col in columns:
        if col.type.base not in _PRIMITIVES:
            raise KsqlStatementError(
                f"{what} format does not support schema.\nformat: DELIMITED\n"
                f"schema: Persistence{{columns=[{', '.join(c.schema_text() for c in columns)}], "
                f"features=[]}}\nreason: The 'DELIMITED' format does not support type "
                f"'{col.type.base}', column: `{col.name}`"
            )


class _Delimited:
    def __init__(self, columns: Sequence[Column]) -> None:
        self.columns = tuple(columns)

    def _encode(self, values: Sequence[object]) -> bytes:
        fields = [_field(v) for v in values]
        first = fields[0] if fields else ""
        if first and not first.startswith('"') and not first[0].isalnum():
            fields[0] = '"' + first + '"'  # Commons CSV quotes a record's odd first field
        return ",".join(fields).encode()

    def _decode(self, data: bytes) -> list[object]:
        text = data.decode("utf-8")
        fields = next(csv.reader([text])) if text else [""]
        if len(fields) != len(self.columns):
            raise CoercionError(
                f"Column count mismatch on deserialization. expected: {len(self.columns)}, "
                f"got: {len(fields)}"
            )
        return [_parse(f, c.type.base) for f, c in zip(fields, self.columns, strict=True)]


class DelimitedKeySerde(_Delimited):
    def serialize(self, values: Sequence[object]) -> bytes | None:
        if not self.columns or all(v is None for v in values):
            return None
        return self._encode(values)

    def deserialize(self, data: bytes | None) -> list[object]:
        if not self.columns:
            return []
        if data is None:
            return [None] * len(self.columns)
        return self._decode(data)


class DelimitedValueSerde(_Delimited):
    def serialize(self, values: Sequence[object] | None) -> bytes | None:
        if values is None:
            return None
        return self._encode(values)

    def deserialize(self, data: bytes | None) -> list[object] | None:
        if data is None:
            return None
        return self._decode(data)
