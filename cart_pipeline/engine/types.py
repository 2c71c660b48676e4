"""SQL types and ksqlDB's value coercion rules.

A type is a small immutable value; `coerce_json` is ksqlDB's JSON deserializer
rule set (KsqlJsonDeserializer/JsonSerdeUtils), `coerce_literal` the rule for
literals in INSERT VALUES and WHERE clauses.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from decimal import Decimal

import orjson

from cart_pipeline.engine.errors import KsqlStatementError

_ALIASES = {"VARCHAR": "STRING", "INT": "INTEGER"}


@dataclass(frozen=True)
class SqlType:
    """A ksqlDB SQL type; `params` holds precision/scale, `children` element types."""

    base: str
    params: tuple[int, ...] = ()
    children: tuple[SqlType, ...] = ()
    field_names: tuple[str, ...] = field(default=())

    @staticmethod
    def of(name: str) -> SqlType:
        upper = name.upper()
        return SqlType(_ALIASES.get(upper, upper))

    def __str__(self) -> str:
        if self.base == "DECIMAL":
            return f"DECIMAL({self.params[0]}, {self.params[1]})"
        if self.base == "ARRAY":
            return f"ARRAY<{self.children[0]}>"
        if self.base == "MAP":
            return f"MAP<{self.children[0]}, {self.children[1]}>"
        if self.base == "STRUCT":
            inner = ", ".join(
                f"`{n}` {t}" for n, t in zip(self.field_names, self.children, strict=True)
            )
            return f"STRUCT<{inner}>"
        return self.base

    @property
    def is_numeric(self) -> bool:
        return self.base in ("INTEGER", "BIGINT", "DOUBLE", "DECIMAL")

    def schema_info(self) -> dict[str, object]:
        """ksqlDB's SchemaInfo entity (DESCRIBE's `fields[].schema`)."""
        fields: list[dict[str, object]] | None = None
        member: dict[str, object] | None = None
        if self.base == "STRUCT":
            fields = [
                {"name": n, "schema": t.schema_info()}
                for n, t in zip(self.field_names, self.children, strict=True)
            ]
        elif self.base == "ARRAY":
            member = self.children[0].schema_info()
        elif self.base == "MAP":
            member = self.children[1].schema_info()
        info: dict[str, object] = {"type": self.base, "fields": fields, "memberSchema": member}
        if self.base == "DECIMAL":
            info["parameters"] = {"precision": self.params[0], "scale": self.params[1]}
        return info


STRING = SqlType("STRING")
INTEGER = SqlType("INTEGER")
BIGINT = SqlType("BIGINT")
DOUBLE = SqlType("DOUBLE")
BOOLEAN = SqlType("BOOLEAN")

SUPPORTED_BASES = frozenset({"STRING", "INTEGER", "BIGINT", "DOUBLE", "BOOLEAN"})


_JAVA_INT = re.compile(r"[+-]?[0-9]+")


class CoercionError(ValueError):
    """A value that cannot be read as its column's type (a deserialization error)."""


def _wrap(value: int, bits: int) -> int:
    """Java's narrowing of an integral value (two's complement wrap-around)."""
    mask = (1 << bits) - 1
    value &= mask
    return value - (1 << bits) if value >> (bits - 1) else value


def _integral(value: object, bits: int, type_name: str) -> int:
    if isinstance(value, bool):
        raise CoercionError(
            f"Can't convert type. sourceType: BooleanNode, requiredType: {type_name}"
        )
    if isinstance(value, int):
        return _wrap(value, bits)
    if isinstance(value, float):
        if math.isnan(value):
            return 0
        if math.isinf(value):
            return (1 << (bits - 1)) - 1 if value > 0 else -(1 << (bits - 1))
        return _wrap(int(value), bits)
    if isinstance(value, Decimal):  # Jackson's DecimalNode (exact): low bits of the integer part
        if not value.is_finite():
            raise CoercionError(
                f"Can't convert type. sourceType: DecimalNode, requiredType: {type_name}"
            )
        if value.as_tuple().exponent >= 64:  # type: ignore[operator]
            # A multiple of 10**64, hence of 2**64: the low bits are 0 (Java's shortcut too),
            # and 1e999999999 is never expanded to a billion-digit integer.
            return 0
        return _wrap(int(value), bits)
    if isinstance(value, str):
        if not _JAVA_INT.fullmatch(value):
            raise CoercionError(f"Can't coerce string to type. targetType: {type_name}")
        parsed = int(value)
        if not -(1 << (bits - 1)) <= parsed < (1 << (bits - 1)):
            raise CoercionError(f"Can't coerce string to type. targetType: {type_name}")
        return parsed
    raise CoercionError(
        f"Can't convert type. sourceType: {_node_name(value)}, requiredType: {type_name}"
    )


def _node_name(value: object) -> str:
    if isinstance(value, dict):
        return "ObjectNode"
    if isinstance(value, list):
        return "ArrayNode"
    if isinstance(value, bool):
        return "BooleanNode"
    if isinstance(value, str):
        return "TextNode"
    if isinstance(value, int):
        return "IntNode"
    if isinstance(value, float):
        return "DoubleNode"
    return type(value).__name__


def coerce_json(value: object, sql_type: SqlType) -> object:
    """Coerce one decoded JSON value to `sql_type` exactly as ksqlDB's JSON serde does."""
    if value is None:
        return None
    base = sql_type.base
    if base == "STRING":
        if isinstance(value, str):
            return value
        if isinstance(value, dict):
            return orjson.dumps(value).decode()
        if isinstance(value, list):
            return "[" + ", ".join(str(coerce_json(v, STRING)) for v in value) + "]"
        if isinstance(value, bool):
            return "true" if value else "false"
        return _java_number_text(value)
    if base == "INTEGER":
        return _integral(value, 32, "INTEGER")
    if base == "BIGINT":
        return _integral(value, 64, "BIGINT")
    if base == "DOUBLE":
        if isinstance(value, bool):
            raise CoercionError("Can't convert type. sourceType: BooleanNode, requiredType: DOUBLE")
        if isinstance(value, int | float | Decimal):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                raise CoercionError("Can't coerce string to type. targetType: DOUBLE") from None
        raise CoercionError(
            f"Can't convert type. sourceType: {_node_name(value)}, requiredType: DOUBLE"
        )
    if base == "BOOLEAN":
        if isinstance(value, bool):
            return value
        raise CoercionError(
            f"Can't convert type. sourceType: {_node_name(value)}, requiredType: BOOLEAN"
        )
    raise CoercionError(f"Type is not supported: {sql_type}")


def _java_number_text(value: object) -> str:
    """Jackson's `asText()` for a numeric node."""
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e7:
            return f"{value:.1f}"
        return repr(value)
    return str(value)


def check_supported(sql_type: SqlType, column: str) -> None:
    """Refuse column types the runtime cannot (yet) carry end to end."""
    if sql_type.base not in SUPPORTED_BASES:
        raise KsqlStatementError(
            f"Unsupported by the embedded engine: column type {sql_type} (column `{column}`)"
        )
