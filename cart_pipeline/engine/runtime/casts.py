"""CAST between the primitive types the engine runs, with ksqlDB's (Java's) conversions.

ksqlDB supports, between these types: BOOLEAN -> STRING; INTEGER/BIGINT/DOUBLE to each other
and to STRING; STRING -> INTEGER/BIGINT (``Integer.parseInt`` / ``Long.parseLong`` of the
trimmed text). A string that does not parse yields NULL, as ksqlDB's expression evaluation
does (it also logs the error). Casts whose Java semantics are not reproduced here
(STRING -> BOOLEAN/DOUBLE, anything to DECIMAL, dates, collections) are refused as unsupported.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable

from cart_pipeline.engine.errors import unsupported
from cart_pipeline.engine.runtime.delimited import java_double
from cart_pipeline.engine.sql import ast
from cart_pipeline.engine.types import SqlType

Converter = Callable[[object], object]

_JAVA_INT = re.compile(r"[+-]?\d+")
# Java's String.trim strips every char up to and including the space
_JAVA_TRIM = "".join(chr(i) for i in range(0x21))


def _wrap(bits: int) -> Callable[[int], int]:
    half, full = 1 << (bits - 1), 1 << bits
    return lambda v: ((v + half) % full) - half


def _double_to_integral(bits: int) -> Converter:
    """Java's (int)/(long) of a double: NaN is 0, out-of-range saturates, else truncates."""
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1

    def convert(v: object) -> object:
        assert isinstance(v, float)
        if math.isnan(v):
            return 0
        if math.isinf(v):
            return hi if v > 0 else lo
        return max(lo, min(hi, math.trunc(v)))

    return convert


def _parse_integral(bits: int) -> Converter:
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1

    def convert(v: object) -> object:
        text = str(v).strip(_JAVA_TRIM)
        if not _JAVA_INT.fullmatch(text):
            return None  # NumberFormatException: ksqlDB yields NULL
        n = int(text)
        return n if lo <= n <= hi else None

    return convert


_wrap32 = _wrap(32)

_CASTS: dict[tuple[str, str], Converter] = {
    ("BOOLEAN", "STRING"): lambda v: "true" if v else "false",
    ("INTEGER", "BIGINT"): lambda v: v,
    ("INTEGER", "DOUBLE"): lambda v: float(v),  # type: ignore[arg-type]
    ("INTEGER", "STRING"): str,
    ("BIGINT", "INTEGER"): lambda v: _wrap32(v),  # type: ignore[arg-type]
    ("BIGINT", "DOUBLE"): lambda v: float(v),  # type: ignore[arg-type]
    ("BIGINT", "STRING"): str,
    ("DOUBLE", "INTEGER"): _double_to_integral(32),
    ("DOUBLE", "BIGINT"): _double_to_integral(64),
    ("DOUBLE", "STRING"): lambda v: java_double(v),  # type: ignore[arg-type]
    ("STRING", "INTEGER"): _parse_integral(32),
    ("STRING", "BIGINT"): _parse_integral(64),
}
_TARGETS = ("BOOLEAN", "INTEGER", "BIGINT", "DOUBLE", "STRING")


def bind_cast(source: SqlType, target: ast.SqlType) -> tuple[SqlType, Converter | None]:
    """The result type and the converter (None: the value passes unchanged) of a CAST."""
    if not isinstance(target, ast.PrimitiveType) or target.name not in _TARGETS:
        raise unsupported(f"CAST to {_type_text(target)}")
    to = SqlType(target.name)
    if source.base in ("NULL", to.base):
        return to, None
    convert = _CASTS.get((source.base, to.base))
    if convert is None:
        raise unsupported(f"CAST from {source} to {to}")
    return to, convert


def _type_text(t: ast.SqlType) -> str:
    return t.name if isinstance(t, ast.PrimitiveType) else type(t).__name__
