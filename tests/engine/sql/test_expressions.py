"""Expression parsing (precedence, literal typing, identifier case) and formatting."""

from __future__ import annotations

from decimal import Decimal

import pytest

from cart_pipeline.engine.sql import (
    ParseError,
    ast,
    format_expression,
    format_identifier,
    format_type,
    parse_expression,
    parse_type,
)

A, B, C = ast.ColumnRef("A"), ast.ColumnRef("B"), ast.ColumnRef("C")


def one(value: int) -> ast.IntegerLiteral:
    return ast.IntegerLiteral(value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a + b * c", ast.ArithmeticBinary("+", A, ast.ArithmeticBinary("*", B, C))),
        ("a - b - c", ast.ArithmeticBinary("-", ast.ArithmeticBinary("-", A, B), C)),
        ("(a + b) % c", ast.ArithmeticBinary("%", ast.ArithmeticBinary("+", A, B), C)),
        ("-a * b", ast.ArithmeticBinary("*", ast.ArithmeticUnary("-", A), B)),
        ("a OR b AND c", ast.LogicalBinary("OR", A, ast.LogicalBinary("AND", B, C))),
        ("NOT a AND b", ast.LogicalBinary("AND", ast.Not(A), B)),
        ("NOT a = b", ast.Not(ast.Comparison("=", A, B))),
        ("a + 1 >= b", ast.Comparison(">=", ast.ArithmeticBinary("+", A, one(1)), B)),
        ("a != b", ast.Comparison("<>", A, B)),
        ("a BETWEEN 1 AND 2 AND b", ast.LogicalBinary("AND", ast.Between(A, one(1), one(2)), B)),
        ("a NOT BETWEEN b AND c", ast.Not(ast.Between(A, B, C))),
        ("a NOT IN (1, b)", ast.Not(ast.InList(A, (one(1), B)))),
        ("a LIKE 'x%' ESCAPE '\\'", ast.Like(A, ast.StringLiteral("x%"), "\\")),
        ("a NOT LIKE b", ast.Not(ast.Like(A, B))),
        (
            "a IS NOT NULL OR b IS NULL",
            ast.LogicalBinary("OR", ast.IsNull(A, negated=True), ast.IsNull(B)),
        ),
        ("a IS NOT DISTINCT FROM b", ast.Comparison("IS NOT DISTINCT FROM", A, B)),
        ("a->b->c[1]", ast.Subscript(ast.Dereference(ast.Dereference(A, "B"), "C"), one(1))),
        (
            "m['k'] + s.x",
            ast.ArithmeticBinary(
                "+",
                ast.Subscript(ast.ColumnRef("M"), ast.StringLiteral("k")),
                ast.ColumnRef("X", "S"),
            ),
        ),
        (
            "CASE WHEN a THEN 1 WHEN b THEN 2 ELSE 3 END",
            ast.Case(None, (ast.WhenClause(A, one(1)), ast.WhenClause(B, one(2))), one(3)),
        ),
        ("CASE a WHEN 1 THEN b END", ast.Case(A, (ast.WhenClause(one(1), B),))),
        ("CAST(a AS DECIMAL(10, 2))", ast.Cast(A, ast.DecimalType(10, 2))),
        ("ARRAY[1, 2]", ast.ArrayConstructor((one(1), one(2)))),
        ("MAP('k' := 1)", ast.MapConstructor(((ast.StringLiteral("k"), one(1)),))),
        ("STRUCT(x := a)", ast.StructConstructor((("X", A),))),
        ("COUNT(*)", ast.FunctionCall("COUNT", (), star=True)),
        ("COUNT()", ast.FunctionCall("COUNT", ())),
        (
            "TRANSFORM(a, x => x * 2)",
            ast.FunctionCall(
                "TRANSFORM",
                (A, ast.Lambda(("X",), ast.ArithmeticBinary("*", ast.ColumnRef("X"), one(2)))),
            ),
        ),
        (
            "REDUCE(a, 0, (s, x) => s + x)",
            ast.FunctionCall(
                "REDUCE",
                (
                    A,
                    one(0),
                    ast.Lambda(
                        ("S", "X"),
                        ast.ArithmeticBinary("+", ast.ColumnRef("S"), ast.ColumnRef("X")),
                    ),
                ),
            ),
        ),
        (
            "TIMESTAMPADD(SECONDS, 5, a)",
            ast.FunctionCall("TIMESTAMPADD", (ast.IntervalUnit("SECONDS"), one(5), A)),
        ),
        ("array + map", ast.ArithmeticBinary("+", ast.ColumnRef("ARRAY"), ast.ColumnRef("MAP"))),
    ],
)
def test_precedence_and_shapes(text: str, expected: ast.Expression) -> None:
    assert parse_expression(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2147483647", ast.IntegerLiteral(2147483647)),
        ("-2147483648", ast.IntegerLiteral(-2147483648)),
        ("2147483648", ast.BigIntLiteral(2147483648)),
        ("1.50", ast.DecimalLiteral(Decimal("1.50"))),
        (".5", ast.DecimalLiteral(Decimal("0.5"))),
        ("-1.5", ast.DecimalLiteral(Decimal("-1.5"))),
        ("1.5E0", ast.DoubleLiteral(1.5)),
        ("2e-3", ast.DoubleLiteral(0.002)),
        ("'it''s'", ast.StringLiteral("it's")),
        ("''", ast.StringLiteral("")),
        ("null", ast.NullLiteral()),
        ("True", ast.BooleanLiteral(True)),
        ("- -5", ast.ArithmeticUnary("-", ast.IntegerLiteral(-5))),
    ],
)
def test_literal_types_follow_ksqldb(text: str, expected: ast.Expression) -> None:
    parsed = parse_expression(text)

    assert parsed == expected
    assert type(parsed) is type(expected)
    if isinstance(expected, ast.DecimalLiteral):  # the scale matters: DECIMAL(3, 2)
        assert str(parsed.value) == str(expected.value)  # type: ignore[union-attr]


def test_literal_outside_bigint_is_a_parse_error() -> None:
    with pytest.raises(ParseError, match="Invalid numeric literal"):
        parse_expression("9223372036854775808")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("col", ast.ColumnRef("COL")),
        ("`col`", ast.ColumnRef("col")),
        ('"Col"', ast.ColumnRef("Col")),
        ("`a``b`", ast.ColumnRef("a`b")),
        ('"a""b"', ast.ColumnRef('a"b')),
        ("Src.`Col`", ast.ColumnRef("Col", "SRC")),
        ("1abc", ast.ColumnRef("1ABC")),
        ("f_1@x", ast.ColumnRef("F_1@X")),
        ("`SELECT`", ast.ColumnRef("SELECT")),
        ("lower(x)", ast.FunctionCall("LOWER", (ast.ColumnRef("X"),))),
    ],
)
def test_identifier_case_rules(text: str, expected: ast.Expression) -> None:
    assert parse_expression(text) == expected


ROUND_TRIP = [
    "a + b * c - d / e % f",
    "NOT (a AND b OR c)",
    "x->y[1]['k'] IS NOT NULL",
    "CASE x WHEN 1 THEN 'one' ELSE 'many' END",
    "CAST(`lower` AS MAP<STRING, ARRAY<STRUCT<`a` INT, B DECIMAL(3, 1)>>>)",
    "a NOT BETWEEN -1 AND 1.50",
    "a NOT IN ('x', 'y''s')",
    "a NOT LIKE '%x' ESCAPE '!'",
    "s.`select` IS DISTINCT FROM 1.5E300",
    "-(-a) + -5 - - -5 + -(5)",
    "TRANSFORM(arr, (x, y) => x + y)",
    "ARRAY[MAP(1 := 'cat'), MAP()] + STRUCT(`a b` := null)",
    "COUNT(*) > 1 AND COUNT() = 0",
    "TIMESTAMPADD(MILLISECONDS, 9223372036854775807, ts)",
    "100. + 0.0000001 + 1E-7 + 123456789.125E3",
]


@pytest.mark.parametrize("text", ROUND_TRIP)
def test_format_round_trips(text: str) -> None:
    expression = parse_expression(text)

    assert parse_expression(format_expression(expression)) == expression


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("f1 - f2", "(F1 - F2)"),
        ("SUBSTRING(source, 0, 1)", "SUBSTRING(SOURCE, 0, 1)"),
        ("test.data", "TEST.DATA"),
        ("MAP(1:='cat') + null", "(MAP(1:='cat') + null)"),
        ("ARRAY[1, 2, 3] + null", "(ARRAY[1, 2, 3] + null)"),
        ("5.0 / null", "(5.0 / null)"),
        ("(s1.k = s2.k) and (s1.k2 = s2.k2)", "((S1.K = S2.K) AND (S1.K2 = S2.K2))"),
        ("id = '10'", "(ID = '10')"),
        ("`lower` + `SELECT` + `KEY` + `Mixed`", "(((`lower` + `SELECT`) + KEY) + `Mixed`)"),
        ("case when a then true else false end", "(CASE WHEN A THEN true ELSE false END)"),
        ("- a", "-A"),
        ("1.5E0", "1.5E0"),
    ],
)
def test_format_matches_ksqldb_text(text: str, expected: str) -> None:
    assert format_expression(parse_expression(text)) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("INT", "INTEGER"),
        ("varchar", "STRING"),
        ("DECIMAL(2,1)", "DECIMAL(2, 1)"),
        ("ARRAY<MAP<INT, DOUBLE>>", "ARRAY<MAP<INTEGER, DOUBLE>>"),
        ("STRUCT<f1 INT, `f2` STRING>", "STRUCT<F1 INTEGER, `f2` STRING>"),
        ("STRUCT<>", "STRUCT<>"),
        ("INT ARRAY", "ARRAY<INTEGER>"),
        ("my_type", "MY_TYPE"),
    ],
)
def test_type_parse_and_format(text: str, expected: str) -> None:
    sql_type = parse_type(text)

    assert format_type(sql_type) == expected
    assert parse_type(format_type(sql_type)) == sql_type


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("COL", "COL"),
        ("col", "`col`"),
        ("SELECT", "`SELECT`"),
        ("KEY", "KEY"),
        ("A B", "`A B`"),
        ("A`B", "`A``B`"),
        ("1A", "1A"),
        ("1E5", "`1E5`"),
        ("", "``"),
    ],
)
def test_identifiers_are_quoted_only_when_needed(name: str, expected: str) -> None:
    assert format_identifier(name) == expected
