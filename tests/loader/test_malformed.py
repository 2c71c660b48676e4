from __future__ import annotations

from fractions import Fraction

import numpy as np
import orjson
import pytest

from cart_pipeline.loader import MALFORMED_KINDS, MalformedKind
from cart_pipeline.loader.malformed import malformed_ordinals, malformed_variants
from cart_pipeline.loader.pools import build_customer_pool, build_item_pool
from tests.loader.ksql_model import ksql_verdict

CUSTOMERS = build_customer_pool(50, 0)
ITEMS = build_item_pool(50, 0)


@pytest.mark.parametrize("kind", MALFORMED_KINDS)
def test_every_variant_is_rejected_by_ksqldb(kind: MalformedKind) -> None:
    variants = malformed_variants(kind, CUSTOMERS, ITEMS)
    assert variants
    for value in variants:
        assert ksql_verdict(value) == "rejected", value


def test_variants_fail_for_the_stated_reason() -> None:
    def variants(kind: MalformedKind) -> tuple[bytes, ...]:
        return malformed_variants(kind, CUSTOMERS, ITEMS)

    for value in variants(MalformedKind.INVALID_JSON):
        value.decode("utf-8")
        with pytest.raises(orjson.JSONDecodeError):
            orjson.loads(value)
    shapes = {type(orjson.loads(v)) for v in variants(MalformedKind.WRONG_SHAPE)}
    assert shapes == {list, str, int}
    for value in variants(MalformedKind.QTY_NOT_NUMERIC):
        decoded = orjson.loads(value)
        assert set(decoded) == {"customer", "item", "qty"}
        assert not isinstance(decoded["qty"], int) or isinstance(decoded["qty"], bool)
    for value in variants(MalformedKind.NON_UTF8):
        with pytest.raises(UnicodeDecodeError):
            value.decode("utf-8")
    assert variants(MalformedKind.EMPTY_VALUE) == (b"",)


def test_model_accepts_what_ksqldb_accepts() -> None:
    # Guards the test model itself: these are NOT rejections in ksqlDB.
    assert ksql_verdict(b"null") == "tombstone"
    assert ksql_verdict(b"{}") == "accepted"
    assert ksql_verdict(b'{"customer":"a","item":"b","qty":"3"}') == "accepted"
    assert ksql_verdict(b'{"customer":"a","item":"b","qty":-2}') == "accepted"


@pytest.mark.parametrize(
    ("share", "records", "expected"),
    [(Fraction(1, 10), 10_003, 1_000), (Fraction(1, 3), 10, 3), (Fraction(1), 7, 7)],
)
def test_placement_count_is_exact_and_batch_independent(
    share: Fraction, records: int, expected: int
) -> None:
    whole = malformed_ordinals(0, records, share)
    assert int(whole[-1]) == expected
    split = records // 3
    first = malformed_ordinals(0, split, share)
    second = malformed_ordinals(split, records - split, share)
    np.testing.assert_array_equal(whole, np.concatenate((first[:-1], second)))
