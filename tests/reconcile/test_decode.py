"""ksqlDB's JSON rules for (CUSTOMER VARCHAR, ITEM VARCHAR, QTY INT), case by case."""

from __future__ import annotations

import pytest

from cart_pipeline.reconcile.decode import (
    BAD_FIELD_TYPE,
    NOT_AN_OBJECT,
    NOT_JSON,
    CartRow,
    Rejected,
    decode_value,
    wrap_int32,
)


@pytest.mark.parametrize(
    ("raw", "row"),
    [
        (b'{"customer":"bob","item":"pants","qty":2}', CartRow("bob", "pants", 2)),
        # exact name first, then case-insensitive; extra fields ignored
        (b'{"CUSTOMER":"a","Item":"b","qty":1,"x":9}', CartRow("a", "b", 1)),
        (b'{"customer":"exact","CUSTOMER":"upper","item":"i","qty":1}',
         CartRow("upper", "i", 1)),
        # missing fields and JSON null are NULL
        (b'{"customer":"bob"}', CartRow("bob", None, None)),
        (b'{"customer":null,"item":"i","qty":null}', CartRow(None, "i", None)),
        # numbers coerced as Java does: truncation toward zero, 32-bit wrap, strict strings
        (b'{"customer":"c","item":"i","qty":2.9}', CartRow("c", "i", 2)),
        (b'{"customer":"c","item":"i","qty":-2.9}', CartRow("c", "i", -2)),
        (b'{"customer":"c","item":"i","qty":"7"}', CartRow("c", "i", 7)),
        (b'{"customer":"c","item":"i","qty":4294967297}', CartRow("c", "i", 1)),
        # 1E+400 is an exact BigDecimal whose low 32 integer bits are 0
        (b'{"customer":"c","item":"i","qty":1e400}', CartRow("c", "i", 0)),
        # Jackson's readTree stops after the first value: trailing content is ignored
        (b'{"customer":"a","item":"b","qty":1} trailing', CartRow("a", "b", 1)),
        # VARCHAR takes scalars as text, objects as JSON, arrays as [a, b]
        (b'{"customer":12,"item":true,"qty":1}', CartRow("12", "true", 1)),
        (b'{"customer":{"a":1},"item":["x","y"],"qty":1}', CartRow('{"a":1}', "[x, y]", 1)),
        # non-Latin and quote-laden names pass untouched
        ('{"customer":"Seán O\'Brien","item":"日本語 `x`;--","qty":1}'.encode(),
         CartRow("Seán O'Brien", "日本語 `x`;--", 1)),
    ],
)  # fmt: skip
def test_accepted_rows(raw: bytes, row: CartRow) -> None:
    assert decode_value(raw) == row


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"", NOT_JSON),
        (b"{not json", NOT_JSON),
        (b"   ", NOT_JSON),
        (b'{"customer":"c","item":"i","qty":NaN}', NOT_JSON),
        (b"\xff\xfe\x00", NOT_JSON),
        (b'{"customer":' + b"[" * 5000 + b"]" * 5000 + b',"item":"i","qty":1}', NOT_JSON),
        (b'[1,2]', NOT_AN_OBJECT),
        (b'"just a string"', NOT_AN_OBJECT),
        (b"42", NOT_AN_OBJECT),
        (b'{"customer":"c","item":"i","qty":"lots"}', BAD_FIELD_TYPE),
        (b'{"customer":"c","item":"i","qty":" 7"}', BAD_FIELD_TYPE),
        (b'{"customer":"c","item":"i","qty":"99999999999"}', BAD_FIELD_TYPE),
        (b'{"customer":"c","item":"i","qty":true}', BAD_FIELD_TYPE),
        (b'{"customer":"c","item":"i","qty":{"n":1}}', BAD_FIELD_TYPE),
    ],
)  # fmt: skip
def test_rejected_records(raw: bytes, reason: str) -> None:
    with pytest.raises(Rejected) as info:
        decode_value(raw)
    assert info.value.reason == reason


def test_astronomical_exponents_answer_at_once() -> None:
    # 10^999999999 is a multiple of 2^32, so Java's intValue() is 0; never expand the digits.
    row = decode_value(b'{"customer":"c","item":"i","qty":1e999999999}')
    assert row == CartRow("c", "i", 0)
    assert decode_value(b'{"customer":"c","item":"i","qty":1e-999999999}') == CartRow("c", "i", 0)


def test_tombstone_is_no_row() -> None:
    assert decode_value(None) is None


def test_huge_integers_wrap_like_java() -> None:
    assert wrap_int32(2**31) == -(2**31)
    assert wrap_int32(2**32 + 5) == 5
    assert wrap_int32(-(2**31) - 1) == 2**31 - 1
    big = b'{"customer":"c","item":"i","qty":123456789012345678901234567890}'
    assert decode_value(big) == CartRow("c", "i", wrap_int32(123456789012345678901234567890))
