"""Bad input always yields a ParseError with ksqlDB's line:column and message shape."""

from __future__ import annotations

import pytest

from cart_pipeline.engine.errors import KsqlStatementError
from cart_pipeline.engine.sql import ParseError, parse_expression, parse_statements
from tests.engine.sql.test_statements import TUTORIAL


def parse_error(text: str) -> ParseError:
    with pytest.raises(ParseError) as caught:
        parse_statements(text)
    return caught.value


def test_type_parameter_error_matches_ksqldb() -> None:
    text = "CREATE STREAM INPUT (K DOUBLE (KEY)) WITH (kafka_topic='input',value_format='JSON');"

    error = parse_error(text)

    assert (error.line, error.column) == (1, 32)
    assert error.message == (
        "line 1:32: Syntax Error\nExpecting {'STRING', INTEGER_VALUE}\nStatement: " + text
    )
    assert error.statement_text == text
    assert isinstance(error, KsqlStatementError)


def test_missing_closing_parenthesis_reports_position_over_whole_request() -> None:
    text = (
        "CREATE STREAM TEST (ID INT KEY, f1 INT) WITH (kafka_topic='t', value_format='JSON');\n"
        "CREATE TABLE OUTPUT AS SELECT f1, f2, COUNT(*) FROM TEST GROUP BY f3, (f2, f1);"
    )

    error = parse_error(text)

    assert (error.line, error.column) == (2, 74)
    assert error.detail == "missing ')' at ','"
    assert error.statement_text == text.splitlines()[1]


def test_trailing_input_has_empty_detail_like_ksqldb() -> None:
    error = parse_error("SELECT * FROM S1 ORDER BY MYKEY DESC;")

    assert error.message == (
        "line 1:24: Syntax Error\n\nStatement: SELECT * FROM S1 ORDER BY MYKEY DESC;"
    )


def test_reserved_keyword_as_name_explains_how_to_quote_it() -> None:
    error = parse_error("CREATE STREAM s (size INT) WITH (kafka_topic='t');")

    assert (error.line, error.column) == (1, 18)
    assert '"size" is a reserved keyword' in error.detail
    assert "`size`" in error.detail


@pytest.mark.parametrize(
    ("text", "line", "column"),
    [
        ("SELECT * FROM riderLocations LIMIT heh;", 1, 36),
        ("CREATE TABLE OUTPUT AS SELECT COUNT(*) FROM TEST GROUP BY DATA AND ID;", 1, 64),
        ("CREATE STREAM INPUT (ID INT KEY, COL0 NULL) WITH (kafka_topic='t');", 1, 39),
        ("CREATE STREAM INPUT (ID INT KEY, COL0 ARRAY<NULL>) WITH (kafka_topic='t');", 1, 45),
        ("SELECT 'unterminated FROM s;", 1, 8),
        ("SELECT * FROM s WHERE a = b = c;", 1, 29),
        ("SELECT * FROM s;\n\n  SELECT # FROM s;", 3, 10),
        ("SELECT * FROM s /* unterminated", 1, 17),
        ("SHOW;", 1, 5),
        (";", 1, 1),
        ("SELECT * FROM", 1, 14),
        ("INSERT INTO s () VALUES (1);", 1, 16),
        ("SELECT * FROM s WINDOW TUMBLING (SIZE 1 YEAR);", 1, 41),
        ("SELECT CAST(a AS DECIMAL) FROM s;", 1, 25),
        ("SELECT x => 1 FROM s;", 1, 10),
    ],
)
def test_errors_carry_the_offending_position(text: str, line: int, column: int) -> None:
    error = parse_error(text)

    assert (error.line, error.column) == (line, column), error.message
    assert error.message.startswith(f"line {line}:{column}: Syntax Error\n")


def test_unrecognized_character_is_named() -> None:
    error = parse_error("SELECT # FROM s;")

    assert error.detail == "token recognition error at: '#'"


def test_expression_entry_point_rejects_trailing_input() -> None:
    with pytest.raises(ParseError) as caught:
        parse_expression("a + b c")

    assert (caught.value.line, caught.value.column) == (1, 7)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "(",
        "CASE",
        "CAST(a AS",
        "ARRAY[1",
        "MAP(1 := )",
        "f(",
        "a.",
        "a->",
        "`unclosed",
        "'",
        "1..2",
        "a IS",
        "x NOT",
        "STRUCT(1 := 2)",
        "${",
        "a[",
        "(a, b) => a",
    ],
)
def test_garbage_expressions_fail_cleanly(text: str) -> None:
    with pytest.raises(ParseError):
        parse_expression(text)


def test_every_truncation_of_the_tutorial_parses_or_fails_with_parse_error() -> None:
    for end in range(len(TUTORIAL)):
        try:
            parse_statements(TUTORIAL[:end])
        except ParseError as error:
            assert error.line >= 1
            assert error.column >= 1


def test_deep_nesting_is_a_parse_error_not_a_recursion_error() -> None:
    with pytest.raises(ParseError, match="nested too deeply"):
        parse_statements("SELECT " + "(" * 5000 + "1" + ")" * 5000 + " FROM s;")
