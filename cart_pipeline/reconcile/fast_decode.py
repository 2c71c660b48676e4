"""The recomputation's batch fast path: decode a whole ``consume()`` batch of values in C.

Almost every record is the loader's canonical ``{"customer": str, "item": str, "qty": int}``.
For those, ksqlDB's rules (``decode.py``) reduce to "take the three fields", so a
``msgspec`` decoder typed exactly that way reads them without a Python-level step per record
(``map`` over the batch, the ``Message`` accessors and the key/qty extraction all run in C).
Anything the typed decoder does not accept goes, record by record, to ``decode.py``'s general
path, which is the reference. The typed decoder accepts *only* values whose answer is known to
be the general path's (checked case by case in ``tests/reconcile/test_fast_decode.py``):

* ``forbid_unknown_fields``: an object with any other key is refused. That covers keys which
  differ only in case (``"CUSTOMER"``: ksqlDB matches the column name exactly first, then
  case-insensitively, last one winning), and values that are not valid UTF-8 inside a field
  it would otherwise skip without validating (the general path rejects them as NOT_JSON);
* all three fields required and non-null (``str``, ``str``, ``int``): a missing or null field,
  a string or float quantity (ksqlDB's coercions), a boolean (a rejection), a non-object, bad
  JSON, trailing content, a BOM or a tombstone (``None``) all raise;
* duplicate exact keys: the last wins, as in the general path (and Jackson's ``ObjectNode``);
* an integer quantity of any size is exact; the sum wraps to 32 bits as ``SUM(INT)`` does
  (wrapping each quantity first, as the general path does, gives the same low 32 bits).
"""

from __future__ import annotations

import gc
from collections import Counter
from collections.abc import Callable, Sequence
from operator import attrgetter
from typing import cast

import msgspec
import orjson

from cart_pipeline.reconcile.decode import Rejected, decode_value, wrap_int32

CartKey = tuple[str, str]


class _Event(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    customer: str
    item: str
    qty: int


#: A tombstone (None) raises TypeError, like any other value it does not take.
_DECODE = cast(Callable[[bytes | None], _Event], msgspec.json.Decoder(_Event).decode)
_KEY = attrgetter("customer", "item")
_QTY = attrgetter("qty")


def decode_batch(values: Sequence[bytes | None]) -> tuple[list[_Event], list[int]]:
    """The canonical events among ``values`` (in order) and the indices of all the others.

    ``map`` keeps going after its function raises, and ``list.extend`` keeps what it had
    appended: one exception per non-canonical value is the only Python-level work.
    """
    events: list[_Event] = []
    others: list[int] = []
    decoded = map(_DECODE, values)
    while True:
        try:
            events.extend(decoded)
        except Exception:  # DecodeError, ValidationError, UnicodeDecodeError, TypeError (None)
            others.append(len(events) + len(others))
        else:
            return events, others


def fold_batch(
    values: Sequence[bytes | None], acc: dict[CartKey, int], rejected: Counter[str]
) -> tuple[int, int]:
    """Fold ``values`` into ``acc`` as ``SUM(qty)``; returns (tombstones, null-key rows).

    Same result as ``fold_value`` on each value in turn. The cyclic garbage collector is off
    meanwhile: the batch's key tuples (10,000 container allocations, and no cycle among them)
    would otherwise set off ~15 young-generation passes per batch, and full passes over the
    growing ``acc`` — measured at ~30 % of the fold's CPU. It runs again after the batch.
    """
    collecting = gc.isenabled()
    gc.disable()
    try:
        events, others = decode_batch(values)
        get = acc.get
        for key, qty in zip(map(_KEY, events), map(_QTY, events), strict=True):
            total = get(key, 0) + qty
            acc[key] = total if -2147483648 <= total <= 2147483647 else wrap_int32(total)
    finally:
        if collecting:
            gc.enable()
    tombstones = null_keys = 0
    for index in others:
        outcome = fold_value(values[index], acc, rejected)
        if outcome == TOMBSTONE:
            tombstones += 1
        elif outcome == NULL_KEY:
            null_keys += 1
    return tombstones, null_keys


FOLDED, TOMBSTONE, NULL_KEY, REJECTED = range(4)


def fold_value(raw: bytes | None, acc: dict[CartKey, int], rejected: Counter[str]) -> int:
    """ksqlDB's rules for one value (``decode.py``): fold it into ``acc`` or count why not."""
    try:
        row = decode_value(raw)
    except Rejected as exc:
        rejected[exc.reason] += 1
        return REJECTED
    if row is None:
        return TOMBSTONE
    if row.customer is None or row.item is None:
        return NULL_KEY
    key = (row.customer, row.item)
    acc[key] = wrap_int32(acc.get(key, 0) + (row.qty or 0))
    return FOLDED


def fold_record(raw: bytes | None, acc: dict[CartKey, int], rejected: Counter[str]) -> int:
    """``fold_value`` with a shortcut for the loader's canonical shape (one record at a time:
    the reference path ``fold_batch`` is tested against)."""
    try:
        doc = orjson.loads(raw) if raw else None
    except orjson.JSONDecodeError:
        doc = None
    if (
        type(doc) is dict
        and len(doc) == 3
        and type(customer := doc.get("customer")) is str
        and type(item := doc.get("item")) is str
        and type(qty := doc.get("qty")) is int
        and -2147483648 <= qty <= 2147483647
    ):
        key = (customer, item)
        total = acc.get(key, 0) + qty
        # wrap_int32 only when out of range: a call per record costs ~5% here.
        acc[key] = total if -2147483648 <= total <= 2147483647 else wrap_int32(total)
        return FOLDED
    return fold_value(raw, acc, rejected)
