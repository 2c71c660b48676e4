"""Test-side model of how ksqlDB's JSON value deserializer treats a record value.

Mirrors ``KsqlJsonDeserializer`` for a stream with columns customer VARCHAR, item VARCHAR,
qty INT: Jackson must parse UTF-8 JSON, the top level must be an object (``null`` is a
tombstone), and qty must coerce to INT (number, or text that parses as an int).
"""

from __future__ import annotations

import re
from typing import Literal

import orjson

Verdict = Literal["accepted", "rejected", "tombstone"]
_INT_TEXT = re.compile(r"[+-]?\d+")


def ksql_verdict(value: bytes) -> Verdict:
    try:
        text = value.decode("utf-8")
        parsed = orjson.loads(text)
    except (UnicodeDecodeError, orjson.JSONDecodeError):
        return "rejected"
    if parsed is None:
        return "tombstone"
    if not isinstance(parsed, dict):
        return "rejected"
    qty = {key.upper(): val for key, val in parsed.items()}.get("QTY")
    if qty is None or (isinstance(qty, int | float) and not isinstance(qty, bool)):
        return "accepted"
    if isinstance(qty, str) and _INT_TEXT.fullmatch(qty):
        return "accepted"
    return "rejected"
