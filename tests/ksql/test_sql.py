"""Pure rendering rules: identifiers, literals, INSERT ... VALUES."""

from __future__ import annotations

import datetime as dt
import math
from decimal import Decimal

import pytest

from cart_pipeline.ksql import KsqlRenderError, quote_identifier, quote_literal
from cart_pipeline.ksql.sql import render_insert_values

INJECTION_SHAPED = [
    "plain",
    "it's",
    "''",
    "'; DROP STREAM CART_EVENTS; --",
    "back`tick``s",
    "semi;colon;",
    "line\nbreak\r\nand\ttab",
    "-- a comment",
    "/* block */ comment */",
    "${not_a_var}",
    "Ωμέγα корзина 購物車 🛒 عربة",
    "\u2028line-sep\u2029para-sep\x85nel",
    "\\' backslash-quote \\",
]


def _unquote_string(literal: str) -> str:
    """Inverse of ksqlDB's STRING token: strip outer quotes, undouble inner ones."""
    assert literal[0] == literal[-1] == "'"
    inner = literal[1:-1]
    assert "'" not in inner.replace("''", ""), "lone quote would end the literal"
    return inner.replace("''", "'")


def _unquote_identifier(quoted: str) -> str:
    assert quoted[0] == quoted[-1] == "`"
    inner = quoted[1:-1]
    assert "`" not in inner.replace("``", ""), "lone back-quote would end the identifier"
    return inner.replace("``", "`")


@pytest.mark.parametrize("value", INJECTION_SHAPED)
def test_string_literal_round_trips(value: str) -> None:
    assert _unquote_string(quote_literal(value)) == value


@pytest.mark.parametrize("value", INJECTION_SHAPED)
def test_identifier_round_trips(value: str) -> None:
    assert _unquote_identifier(quote_identifier(value)) == value


def test_identifier_examples() -> None:
    assert quote_identifier("CART_EVENTS") == "`CART_EVENTS`"
    assert quote_identifier("a`b") == "`a``b`"
    assert quote_identifier("``") == "``````"
    assert quote_identifier("x'y") == "`x'y`"


@pytest.mark.parametrize("bad", ["", None, 3, b"bytes"])
def test_identifier_rejects_non_names(bad: object) -> None:
    with pytest.raises(KsqlRenderError):
        quote_identifier(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, "NULL"),
        (True, "TRUE"),
        (False, "FALSE"),
        (0, "0"),
        (-42, "-42"),
        (2**63 - 1, "9223372036854775807"),
        (-(2**63), "-9223372036854775808"),
        (1.5, "1.5E0"),
        (-0.0, "-0.0E0"),
        (1e-5, "1E-05"),
        (1e16, "1E+16"),
        (0.1, "0.1E0"),
        (Decimal("12.340"), "12.340"),
        (Decimal("-1E+3"), "-1000"),
        ("x", "'x'"),
        ("", "''"),
        ("it's", "'it''s'"),
        (dt.date(2024, 2, 29), "'2024-02-29'"),
        (dt.time(13, 5, 7, 123456), "'13:05:07.123'"),
        (
            dt.datetime(2024, 1, 2, 4, 4, 5, 678900, tzinfo=dt.timezone(dt.timedelta(hours=1))),
            "'2024-01-02T03:04:05.678'",
        ),
        ([1, "a", None], "ARRAY[1, 'a', NULL]"),
        ((), "ARRAY[]"),
        ({"k'": 1.0, "z": [True]}, "MAP('k''' := 1.0E0, 'z' := ARRAY[TRUE])"),
    ],
)
def test_literals(value: object, expected: str) -> None:
    assert quote_literal(value) == expected


def test_float_literals_round_trip_exactly() -> None:
    for value in (0.1, 1 / 3, 2.5e-300, 1.7976931348623157e308, -123456.789):
        assert float(quote_literal(value)) == value


@pytest.mark.parametrize(
    "bad",
    [
        math.nan,
        math.inf,
        -math.inf,
        Decimal("NaN"),
        Decimal("Infinity"),
        2**63,
        -(2**63) - 1,
        b"bytes",
        object(),
        {1: "non-str key"},
        dt.datetime(2024, 1, 1),  # naive: ambiguous instant
        dt.time(1, 2, tzinfo=dt.UTC),
        [1, math.nan],
    ],
)
def test_unrenderable_values_are_rejected(bad: object) -> None:
    with pytest.raises(KsqlRenderError) as info:
        quote_literal(bad)
    assert "cannot render" in str(info.value)


def test_render_error_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        quote_literal(math.nan)


def test_insert_values_quotes_everything() -> None:
    sql = render_insert_values(
        "cart`events",
        {"CART_ID": "c'1; DROP STREAM X; --", "qty": 2, "note": None, "Ω": "/* x */"},
    )
    assert sql == (
        "INSERT INTO `cart``events` (`CART_ID`, `qty`, `note`, `Ω`) "
        "VALUES ('c''1; DROP STREAM X; --', 2, NULL, '/* x */');"
    )


def test_insert_values_statement_has_exactly_one_terminator_outside_literals() -> None:
    row = {f"c{i}": value for i, value in enumerate(INJECTION_SHAPED)}
    sql = render_insert_values("S", row)
    # Walk the text like ksqlDB's lexer: count ';' outside quotes/back-quotes.
    outside, quote = [], ""
    i = 0
    while i < len(sql):
        ch = sql[i]
        if quote:
            if ch == quote and sql[i + 1 : i + 2] == quote:
                i += 2
                continue
            if ch == quote:
                quote = ""
        elif ch in "'`":
            quote = ch
        else:
            outside.append(ch)
        i += 1
    code = "".join(outside)
    assert code.count(";") == 1 and code.endswith(";")
    assert "--" not in code and "/*" not in code


@pytest.mark.parametrize("row", [{}, None, [("a", 1)]])
def test_insert_values_needs_a_mapping(row: object) -> None:
    with pytest.raises(KsqlRenderError):
        render_insert_values("S", row)  # type: ignore[arg-type]
