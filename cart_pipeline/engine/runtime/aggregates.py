"""Aggregate-function registry (SUM, COUNT; MIN/MAX/AVG slot in as more entries).

An aggregate keeps a JSON-serialisable state per group, so the state can live in the
changelog topic and be restored after a crash. `undo` takes a value back out: what an
aggregation over a TABLE source needs (runtime/table_aggregate.py).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

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


AGGREGATES: dict[str, Callable[[Sequence[SqlType], bool], Aggregate]] = {
    "SUM": _sum,
    "COUNT": _count,
}
# ksqlDB aggregates we know by name but do not run yet: refused, never mis-answered.
KNOWN_UNSUPPORTED = frozenset(
    {
        "MIN",
        "MAX",
        "AVG",
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
