"""Malformed record values that ksqlDB's JSON value deserializer rejects.

They exercise the data-quality path: each one must land in ksqlDB's processing log as a
deserialization error and be counted as *rejected* by the reconciliation, never folded
into ``current_shopping_cart``. Only values that are rejected outright qualify, following
``KsqlJsonDeserializer`` (Jackson ``readTree`` + per-column coercion):

* not included: ``null`` (a tombstone, silently skipped), ``{}`` or missing fields
  (accepted: the columns become NULL; SUM skips a NULL qty and a NULL customer/item is a
  NULL group-by key that is dropped, but nothing is *rejected*), ``"qty": "3"`` (numeric
  text is coerced to 3), ``"qty": 1.5`` (truncated to 1), trailing garbage after a
  complete object (Jackson stops reading after the first value).
* included, cycling in :data:`MALFORMED_KINDS` order: see :class:`MalformedKind`.

Placement is deterministic and evenly spread: record ``j`` (0-based, whole run) is
malformed iff ``floor((j + 1) * share) > floor(j * share)``, with ``share`` as an exact
fraction, so the first N records hold exactly ``floor(N * share)`` malformed ones, and the
k-th malformed record has kind ``MALFORMED_KINDS[k % 5]``.
"""

from __future__ import annotations

from enum import StrEnum
from fractions import Fraction

import numpy as np
import numpy.typing as npt
import orjson

#: Share resolution: malformed_share is rounded to a fraction with denominator <= this.
SHARE_MAX_DENOMINATOR = 1_000_000


class MalformedKind(StrEnum):
    """Why ksqlDB rejects the value."""

    INVALID_JSON = "invalid_json"  # truncated object: unexpected end of input
    WRONG_SHAPE = "wrong_shape"  # valid JSON, but an array/string/number, not an object
    QTY_NOT_NUMERIC = "qty_not_numeric"  # "qty": "lots" fails INT coercion
    NON_UTF8 = "non_utf8"  # invalid UTF-8 bytes: Jackson's UTF-8 decoder fails
    EMPTY_VALUE = "empty_value"  # zero bytes (not null): no JSON value at all


MALFORMED_KINDS: tuple[MalformedKind, ...] = tuple(MalformedKind)


def malformed_variants(
    kind: MalformedKind, customers: tuple[str, ...], items: tuple[str, ...]
) -> tuple[bytes, ...]:
    """A few concrete rejected values of ``kind``, built from pool names for realism."""
    customer, item = customers[0], items[0]
    good = orjson.dumps({"customer": customer, "item": item, "qty": 1})
    if kind is MalformedKind.INVALID_JSON:
        cut_in_string = b'{"customer":' + orjson.dumps(customer)[:-1]
        return (good[:-1], cut_in_string, b'{"customer":"' + customer.encode() + b'","item":')
    if kind is MalformedKind.WRONG_SHAPE:
        return (
            orjson.dumps([customer, item, 1]),
            orjson.dumps(f"{customer} added {item}"),
            b"42",
        )
    if kind is MalformedKind.QTY_NOT_NUMERIC:
        return tuple(
            orjson.dumps({"customer": customer, "item": item, "qty": qty})
            for qty in ("lots", "a few", True)
        )
    if kind is MalformedKind.NON_UTF8:
        return (
            b'{"customer":"\xff\xfe' + customer.encode() + b'","item":"x","qty":1}',
            # Latin-1 text where UTF-8 is expected: 0xE9 followed by ASCII is invalid.
            b'{"customer":"Jos\xe9 M\xfcller","item":"Caf\xe9","qty":1}',
        )
    if kind is MalformedKind.EMPTY_VALUE:
        return (b"",)
    raise AssertionError(f"unhandled kind {kind!r}")  # pragma: no cover


def share_fraction(share: float) -> Fraction:
    """``share`` as the exact fraction used for placement (denominator <= 1e6)."""
    return Fraction(share).limit_denominator(SHARE_MAX_DENOMINATOR)


def malformed_ordinals(start: int, count: int, share: Fraction) -> npt.NDArray[np.int64]:
    """For records ``start .. start+count-1``: how many malformed records precede each.

    Record ``j`` is malformed iff ``ordinal[j + 1] > ordinal[j]``; that ordinal is also
    its index among malformed records (which picks its kind). Returns ``count + 1``
    values so the caller can diff them. Integer arithmetic: exact, no float drift.
    """
    num, den = share.numerator, share.denominator
    indices = np.arange(start, start + count + 1, dtype=np.int64)
    return (indices * num) // den
