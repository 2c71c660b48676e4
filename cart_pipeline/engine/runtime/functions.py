"""Scalar function registry: name -> binder (argument types -> result type + implementation).

Each binder type-checks its arguments as ksqlDB's UDF resolution would for the signatures we
serve; anything else is refused as unsupported, never answered differently.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from cart_pipeline.engine.errors import KsqlStatementError, unsupported
from cart_pipeline.engine.types import BIGINT, DOUBLE, INTEGER, STRING, SqlType

Impl = Callable[[Sequence[object]], object]
Binder = Callable[[Sequence[SqlType]], tuple[SqlType, Impl]]
NULL = SqlType("NULL")


def _strict(fn: Callable[..., object]) -> Impl:
    """NULL in, NULL out (the usual UDF behaviour)."""

    def call(args: Sequence[object]) -> object:
        if any(a is None for a in args):
            return None
        return fn(*args)

    return call


def _need(name: str, types: Sequence[SqlType], allowed: tuple[tuple[str, ...], ...]) -> None:
    if len(types) != len(allowed) or any(
        t.base not in ok and t.base != "NULL" for t, ok in zip(types, allowed, strict=True)
    ):
        raise unsupported(f"function {name}({', '.join(str(t) for t in types)})")


def _common(name: str, types: Sequence[SqlType]) -> SqlType:
    known = [t for t in types if t.base != "NULL"]
    if not known:
        return NULL
    first = known[0]
    if any(t != first for t in known):
        raise unsupported(f"function {name} over mixed types")
    return first


def _as_value(types: Sequence[SqlType]) -> tuple[SqlType, Impl]:
    if len(types) != 1:
        raise unsupported("function AS_VALUE arity")
    return types[0], lambda a: a[0]


def _concat(types: Sequence[SqlType]) -> tuple[SqlType, Impl]:
    if not types or any(t.base not in ("STRING", "NULL") for t in types):
        raise unsupported("function CONCAT over non-STRING arguments")
    return STRING, lambda a: "".join(str(v) for v in a if v is not None)


def _string_fn(name: str, fn: Callable[[str], object], result: SqlType) -> Binder:
    def bind(types: Sequence[SqlType]) -> tuple[SqlType, Impl]:
        _need(name, types, (("STRING",),))
        return result, _strict(fn)

    return bind


def _initcap(s: str) -> str:
    return " ".join(w[:1].upper() + w[1:].lower() for w in s.split(" "))


def _substring(types: Sequence[SqlType]) -> tuple[SqlType, Impl]:
    if len(types) == 2:
        _need("SUBSTRING", types, (("STRING",), ("INTEGER",)))
    else:
        _need("SUBSTRING", types, (("STRING",), ("INTEGER",), ("INTEGER",)))

    def sub(s: str, pos: int, length: int | None = None) -> str:
        n = len(s)
        start = pos - 1 if pos > 0 else n + pos if pos < 0 else 0
        start = max(0, min(start, n))
        end = n if length is None else max(start, min(n, start + max(length, 0)))
        return s[start:end]

    return STRING, _strict(sub)


def _ifnull(types: Sequence[SqlType]) -> tuple[SqlType, Impl]:
    if len(types) != 2:
        raise KsqlStatementError("Function 'IFNULL' requires 2 arguments")
    return _common("IFNULL", types), lambda a: a[1] if a[0] is None else a[0]


def _coalesce(types: Sequence[SqlType]) -> tuple[SqlType, Impl]:
    if not types:
        raise unsupported("COALESCE without arguments")
    return _common("COALESCE", types), lambda a: next((v for v in a if v is not None), None)


def _nullif(types: Sequence[SqlType]) -> tuple[SqlType, Impl]:
    if len(types) != 2:
        raise unsupported("function NULLIF arity")
    result = _common("NULLIF", types)
    return result, lambda a: None if a[0] is None or a[0] == a[1] else a[0]


def _abs(types: Sequence[SqlType]) -> tuple[SqlType, Impl]:
    _need("ABS", types, (("INTEGER", "BIGINT", "DOUBLE"),))
    return types[0], _strict(abs)


def _java_round(v: float) -> int:
    return math.floor(v + 0.5)


def _round(types: Sequence[SqlType]) -> tuple[SqlType, Impl]:
    if len(types) == 1:
        _need("ROUND", types, (("INTEGER", "BIGINT", "DOUBLE"),))
        if types[0].base == "DOUBLE":
            return BIGINT, _strict(lambda v: _java_round(v))
        return types[0], _strict(lambda v: v)
    _need("ROUND", types, (("DOUBLE",), ("INTEGER",)))

    def rnd(v: float, places: int) -> float:
        scale = 10.0**places
        return math.floor(v * scale + 0.5) / scale

    return DOUBLE, _strict(rnd)


def _floor_ceil(name: str, fn: Callable[[float], float]) -> Binder:
    def bind(types: Sequence[SqlType]) -> tuple[SqlType, Impl]:
        _need(name, types, (("INTEGER", "BIGINT", "DOUBLE"),))
        if types[0].base == "DOUBLE":
            return DOUBLE, _strict(lambda v: float(fn(v)))
        return types[0], _strict(lambda v: v)

    return bind


def _exp(types: Sequence[SqlType]) -> tuple[SqlType, Impl]:
    _need("EXP", types, (("INTEGER", "BIGINT", "DOUBLE"),))
    return DOUBLE, _strict(lambda v: math.exp(v))


FUNCTIONS: dict[str, Binder] = {
    "AS_VALUE": _as_value,
    "CONCAT": _concat,
    "LEN": _string_fn("LEN", len, INTEGER),
    "UCASE": _string_fn("UCASE", str.upper, STRING),
    "LCASE": _string_fn("LCASE", str.lower, STRING),
    "TRIM": _string_fn("TRIM", lambda s: s.strip(" "), STRING),
    "INITCAP": _string_fn("INITCAP", _initcap, STRING),
    "SUBSTRING": _substring,
    "IFNULL": _ifnull,
    "COALESCE": _coalesce,
    "NULLIF": _nullif,
    "ABS": _abs,
    "ROUND": _round,
    "FLOOR": _floor_ceil("FLOOR", math.floor),
    "CEIL": _floor_ceil("CEIL", math.ceil),
    "EXP": _exp,
}


def bind(name: str, types: Sequence[SqlType]) -> tuple[SqlType, Impl]:
    binder = FUNCTIONS.get(name.upper())
    if binder is None:
        raise unsupported(f"function {name.upper()}")
    return binder(types)
