"""Tokens, positions and request splitting."""

from __future__ import annotations

from cart_pipeline.engine.sql import split_statements
from cart_pipeline.engine.sql.lexer import TokenKind, tokenize


def test_tokens_keep_text_value_and_one_based_positions() -> None:
    tokens = tokenize("select `Mixed` ,\n  'it''s' 1.5 2E3 != x")

    assert [(t.kind, t.value, t.line, t.column) for t in tokens] == [
        (TokenKind.WORD, "SELECT", 1, 1),
        (TokenKind.QUOTED_IDENTIFIER, "Mixed", 1, 8),
        (TokenKind.SYMBOL, ",", 1, 16),
        (TokenKind.STRING, "it's", 2, 3),
        (TokenKind.DECIMAL, "1.5", 2, 11),
        (TokenKind.FLOAT, "2E3", 2, 15),
        (TokenKind.SYMBOL, "<>", 2, 19),
        (TokenKind.WORD, "X", 2, 22),
        (TokenKind.EOF, "", 2, 23),
    ]
    assert tokens[0].text == "select"


def test_comments_are_skipped_including_multiline_ones() -> None:
    tokens = tokenize("a -- one; two\n/* three;\nfour */ b")

    assert [(t.value, t.line, t.column) for t in tokens[:-1]] == [("A", 1, 1), ("B", 3, 9)]


def test_digit_identifier_versus_numbers() -> None:
    assert [(t.kind, t.value) for t in tokenize("1abc 1e5 12 1e5x")[:-1]] == [
        (TokenKind.DIGIT_IDENTIFIER, "1ABC"),
        (TokenKind.FLOAT, "1e5"),
        (TokenKind.INTEGER, "12"),
        (TokenKind.DIGIT_IDENTIFIER, "1E5X"),
    ]


def test_split_ignores_semicolons_in_strings_identifiers_and_comments() -> None:
    text = "SET 'a;b'='c';  -- x;y\nSELECT `;` FROM \"s;\" /* ; */;\nSHOW STREAMS"

    spans = split_statements(text)

    assert [s.text for s in spans] == [
        "SET 'a;b'='c';",
        'SELECT `;` FROM "s;" /* ; */;',
        "SHOW STREAMS",
    ]
    assert all(text[s.start : s.end] == s.text for s in spans)


def test_split_of_blank_text_is_empty() -> None:
    assert split_statements("  -- only a comment\n") == []
