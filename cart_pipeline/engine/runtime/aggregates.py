"""Aggregate-function registry: SUM, COUNT, MIN, MAX, AVG with ksqlDB's semantics.

An aggregate keeps a JSON-serialisable state per group, so the state can live in the
changelog topic and be restored after a crash. `undo` takes a value back out: what an
aggregation over a TABLE source needs (runtime/table_aggregate.py).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast

from cart_pipeline.engine.errors import KsqlStatementError
from cart_pipeline.engine.types import BIGINT, DOUBLE, INTEGER, SqlType


def _wrapper(bits: int) -> Callable[[int], int]:
    half, full = 1 << (bits - 1), 1 << bits
    return lambda v: ((v + half) % full) - half


@dataclass(frozen=True)
class Aggregate:
    """One aggregate call, bound to its argument types."""

    name: str
    result_type: SqlType
    initial: Callable[[], object]
    add: Callable[[object, object], object]  # (state, argument value) -> new state
    result: Callable[[object], object]
    # (state, argument value) -> state without it: what a TABLE source's updates need
    undo: Callable[[object, object], object] | None = None


def _sum(arg_types: Sequence[SqlType], star: bool) -> Aggregate:
    if star or len(arg_types) != 1:
        raise KsqlStatementError("Function 'SUM' does not accept parameters ().")
    t = arg_types[0]
    if t.base == "INTEGER":
        wrap = _wrapper(32)
    elif t.base == "BIGINT":
        wrap = _wrapper(64)
    elif t.base == "DOUBLE":
        return Aggregate(
            "SUM",
            DOUBLE,
            lambda: 0.0,
            lambda s, v: s if v is None else s + v,  # type: ignore[operator]
            lambda s: s,
            lambda s, v: s if v is None else s - v,  # type: ignore[operator]
        )
    else:
        raise KsqlStatementError(f"Function 'SUM' does not accept parameters ({t}).")
    return Aggregate(
        "SUM",
        t,
        lambda: 0,
        lambda s, v: s if v is None else wrap(s + v),  # type: ignore[operator]
        lambda s: s,
        lambda s, v: s if v is None else wrap(s - v),  # type: ignore[operator]
    )


def _count(arg_types: Sequence[SqlType], star: bool) -> Aggregate:
    if star or not arg_types:
        return Aggregate(
            "COUNT",
            BIGINT,
            lambda: 0,
            lambda s, v: s + 1,  # type: ignore[operator]
            lambda s: s,
            lambda s, v: s - 1,  # type: ignore[operator]
        )
    return Aggregate(
        "COUNT",
        BIGINT,
        lambda: 0,
        lambda s, v: s if v is None else s + 1,  # type: ignore[operator]
        lambda s: s,
        lambda s, v: s if v is None else s - 1,  # type: ignore[operator]
    )


AggregateFactory = Callable[[Sequence[SqlType], bool], Aggregate]


def _java_order(base: str) -> Callable[[object], object]:
    """Sort key giving Java's compareTo order: Double's (-0.0 < 0.0, NaN above all) and
    String's (UTF-16 code units, not code points)."""
    if base == "DOUBLE":
        return lambda v: (1, 0.0, 0.0) if math.isnan(v) else (0, v, math.copysign(1.0, v))  # type: ignore[arg-type]
    if base == "STRING":
        return lambda v: v.encode("utf-16-be", "surrogatepass")  # type: ignore[attr-defined]
    return lambda v: v


def _extreme(name: str, pick_new: Callable[[object, object], bool]) -> AggregateFactory:
    """MIN / MAX as ksqlDB's comparable UDAFs: NULL arguments are skipped, NULL until the first
    value; no undo, so ksqlDB refuses them over a TABLE source."""

    def factory(arg_types: Sequence[SqlType], star: bool) -> Aggregate:
        if star or len(arg_types) != 1:
            raise KsqlStatementError(f"Function '{name}' does not accept parameters ().")
        t = arg_types[0]
        if t.base not in ("INTEGER", "BIGINT", "DOUBLE", "STRING"):
            raise KsqlStatementError(f"Function '{name}' does not accept parameters ({t}).")
        key = _java_order(t.base)

        def add(state: object, value: object) -> object:
            if value is None:
                return state
            if state is None:
                return value
            return value if pick_new(key(value), key(state)) else state

        return Aggregate(name, t, lambda: None, add, lambda s: s)

    return factory


def _avg(arg_types: Sequence[SqlType], star: bool) -> Aggregate:
    """ksqlDB's AverageUdaf: state (sum, count), the sum wrapping as its Java type does;
    0.0 for no values; undo-able, so it also aggregates TABLE sources."""
    if star or len(arg_types) != 1:
        raise KsqlStatementError("Function 'AVG' does not accept parameters ().")
    t = arg_types[0]
    if t.base == "DOUBLE":
        wrap: Callable[[int], int] | None = None
    elif t.base in ("INTEGER", "BIGINT"):
        wrap = _wrapper(32 if t.base == "INTEGER" else 64)
    else:
        raise KsqlStatementError(f"Function 'AVG' does not accept parameters ({t}).")

    def step(state: object, value: object, sign: int) -> object:
        if value is None:
            return state
        total, count = cast("list[Any]", state)
        total = total + sign * cast("Any", value)
        return [total if wrap is None else wrap(total), count + sign]

    def result(state: object) -> object:
        total, count = cast("list[Any]", state)
        return 0.0 if count == 0 else float(total) / count

    zero = 0.0 if wrap is None else 0
    return Aggregate(
        "AVG", DOUBLE, lambda: [zero, 0], lambda s, v: step(s, v, 1), result,
        lambda s, v: step(s, v, -1),
    )  # fmt: skip


AGGREGATES: dict[str, AggregateFactory] = {
    "SUM": _sum,
    "COUNT": _count,
    "MIN": _extreme("MIN", lambda new, old: new < old),  # type: ignore[operator]
    "MAX": _extreme("MAX", lambda new, old: new > old),  # type: ignore[operator]
    "AVG": _avg,
}
# ksqlDB aggregates we know by name but do not run yet: refused, never mis-answered.
KNOWN_UNSUPPORTED = frozenset(
    {
        "COLLECT_LIST",
        "COLLECT_SET",
        "LATEST_BY_OFFSET",
        "EARLIEST_BY_OFFSET",
        "HISTOGRAM",
        "TOPK",
        "TOPKDISTINCT",
        "COUNT_DISTINCT",
        "STDDEV_SAMP",
        "STDDEV_SAMPLE",
        "CORRELATION",
        "ATTR",
    }
)


def is_aggregate(name: str) -> bool:
    return name.upper() in AGGREGATES or name.upper() in KNOWN_UNSUPPORTED


def bind(name: str, arg_types: Sequence[SqlType], star: bool) -> Aggregate:
    upper = name.upper()
    factory = AGGREGATES.get(upper)
    if factory is None:
        raise KsqlStatementError(f"Unsupported by the embedded engine: aggregate function {upper}")
    return factory(arg_types, star)


INTEGER_TYPES = (INTEGER, BIGINT)
