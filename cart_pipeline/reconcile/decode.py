"""ksqlDB's JSON deserialization rules for the cart stream, implemented independently.

The recomputation must skip exactly the records ksqlDB skips and coerce exactly as it does,
otherwise a poison record looks like a mismatch. The rules (ksqlDB's ``KsqlJsonDeserializer``
and ``JsonSerdeUtils``) for ``(CUSTOMER VARCHAR, ITEM VARCHAR, QTY INT)``:

* a null value (tombstone) is no row at all: a stream drops it;
* bytes that are not JSON (including non-UTF-8 and empty values), or a JSON value that is not
  an object, fail deserialization (content after the first JSON value is ignored, as Jackson's
  ``readTree`` does): the record is *rejected* (ksqlDB logs it to its processing log);
* fields are matched by exact name first, then case-insensitively; extra fields are ignored and
  missing ones are NULL;
* VARCHAR takes any scalar as its text (``1`` → ``"1"``, ``true`` → ``"true"``), an object as its
  JSON text and an array as ``[a, b]``;
* INT takes a number truncated toward zero and wrapped to 32 bits (Java's ``intValue``), or a
  string that Java's ``Integer.parseInt`` accepts; anything else (a boolean, an object, ``"lots"``)
  rejects the record.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

import orjson

#: Rejection reasons, counted apart in the reconciliation's metadata.
NOT_JSON = "not_json"
NOT_AN_OBJECT = "not_an_object"
BAD_FIELD_TYPE = "bad_field_type"

_INT_TEXT = re.compile(r"[+-]?[0-9]+")
_INT32 = 1 << 32


class Rejected(Exception):
    """ksqlDB would fail to deserialize this record."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class CartRow:
    customer: str | None
    item: str | None
    qty: int | None


def wrap_int32(value: int) -> int:
    """Java ``int`` overflow: keep the low 32 bits, two's complement."""
    value &= _INT32 - 1
    return value - _INT32 if value >= 1 << 31 else value


def decode_value(raw: bytes | None) -> CartRow | None:
    """The row ksqlDB reads from one record value; None for a tombstone; raises Rejected."""
    if raw is None:
        return None
    doc = _read_tree(raw)
    if not isinstance(doc, dict):
        raise Rejected(NOT_AN_OBJECT, f"JSON {type(doc).__name__} is not an object")
    upper: dict[str, Any] | None = None

    def field(name: str) -> Any:
        nonlocal upper
        if name in doc:
            return doc[name]
        if upper is None:
            # Jackson keeps the last of keys that differ only by case; so does this.
            upper = {k.upper(): v for k, v in doc.items()}
        return upper.get(name)

    return CartRow(_to_string(field("CUSTOMER")), _to_string(field("ITEM")), _to_int(field("QTY")))


def _to_string(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return orjson.dumps(value).decode()
    if isinstance(value, list):
        return "[" + ", ".join(str(_to_string(v)) for v in value) + "]"
    if isinstance(value, Decimal):
        return str(value)
    return str(value) if isinstance(value, int) else repr(value)


def _to_int(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise Rejected(BAD_FIELD_TYPE, "QTY: can't convert BooleanNode to INTEGER")
    if isinstance(value, int):
        return wrap_int32(value)
    exponent = value.as_tuple().exponent if isinstance(value, Decimal) else 0
    if isinstance(exponent, int) and exponent >= 32:
        # m x 10^e with e >= 32 is a multiple of 2^32: its low 32 bits are 0. Answer without
        # building a number with e digits (1e999999999 would take minutes).
        return 0
    if isinstance(value, float | Decimal):
        try:
            return wrap_int32(int(value))  # int() truncates toward zero, like Java
        except (OverflowError, ValueError, InvalidOperation):
            raise Rejected(BAD_FIELD_TYPE, f"QTY: {value!r} is not a finite number") from None
    if isinstance(value, str):
        if _INT_TEXT.fullmatch(value) and -(1 << 31) <= int(value) < (1 << 31):
            return int(value)
        raise Rejected(BAD_FIELD_TYPE, "QTY: can't coerce string to type INTEGER")
    raise Rejected(BAD_FIELD_TYPE, f"QTY: can't convert {type(value).__name__} to INTEGER")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


_DECODER = json.JSONDecoder(parse_float=Decimal, parse_constant=_reject_constant)


def _read_tree(raw: bytes) -> Any:
    """Jackson's ``readTree``: the first JSON value; content after it is ignored, as ksqlDB's
    mapper does not enable FAIL_ON_TRAILING_TOKENS. Decimals and big integers stay exact.
    (Jackson also sniffs UTF-16/32 input; event values are UTF-8, which is all this accepts.)"""
    try:
        text = raw.decode("utf-8").lstrip(" \t\r\n\ufeff")
        if not text:
            raise ValueError("no content (empty value)")
        doc, _ = _DECODER.raw_decode(text)
    except (UnicodeDecodeError, ValueError) as exc:
        raise Rejected(NOT_JSON, f"not valid JSON: {exc}") from None
    except RecursionError:  # ~1,000 levels deep: parsers refuse it (Jackson's nesting limit)
        raise Rejected(NOT_JSON, "not valid JSON: nested too deeply") from None
    return doc
