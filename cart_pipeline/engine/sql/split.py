"""Split a request's text into statements without parsing them.

The split follows the lexer, so a ``;`` inside a string, a quoted identifier or a comment does
not end a statement. Each piece is the statement's exact text, from its first token to its
``;`` inclusive (a last statement without ``;`` is returned as is), like ksqlDB's
``statementText``. Use it when statements must be handled one at a time, e.g. to report which
one failed before the later ones are even looked at.
"""

from __future__ import annotations

from dataclasses import dataclass

from cart_pipeline.engine.sql.lexer import TokenKind, tokenize

__all__ = ["StatementSpan", "split_statements"]


@dataclass(frozen=True, slots=True)
class StatementSpan:
    """One statement's text and its ``[start, end)`` offsets in the request."""

    text: str
    start: int
    end: int


def split_statements(text: str) -> list[StatementSpan]:
    spans: list[StatementSpan] = []
    start: int | None = None
    last_end = 0
    for token in tokenize(text):
        if token.kind is TokenKind.EOF:
            break
        if start is None:
            start = token.start
        last_end = token.end
        if token.is_symbol(";"):
            spans.append(StatementSpan(text[start:last_end], start, last_end))
            start = None
    if start is not None:
        spans.append(StatementSpan(text[start:last_end], start, last_end))
    return spans
