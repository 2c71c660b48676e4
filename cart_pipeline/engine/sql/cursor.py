"""Token cursor shared by the expression and statement parsers.

It owns look-ahead, consumption and the wording of syntax errors. Messages imitate what
ksqlDB's ANTLR parser prints, because users and the conformance cases match on them:

- ``missing ')' at ','`` when a closing bracket is missing;
- ``Expecting {',', ')'}`` when one of a known set of tokens was required;
- an empty detail for trailing input after a complete statement;
- ksqlDB's own message when a reserved keyword is used where a name is expected.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NoReturn

from cart_pipeline.engine.sql.ast import Location
from cart_pipeline.engine.sql.errors import ParseError
from cart_pipeline.engine.sql.keywords import RESERVED
from cart_pipeline.engine.sql.lexer import Token, TokenKind

__all__ = ["TokenCursor"]

_CLOSERS = frozenset({")", "]", ">"})


class TokenCursor:
    """A position in a token list, with helpers that raise :class:`ParseError` on mismatch."""

    def __init__(self, tokens: list[Token]) -> None:
        self.tokens = tokens
        self.index = 0

    # -- look-ahead -------------------------------------------------------------------------

    @property
    def current(self) -> Token:
        return self.tokens[self.index]

    def peek(self, offset: int = 1) -> Token:
        return self.tokens[min(self.index + offset, len(self.tokens) - 1)]

    def at_word(self, *words: str) -> bool:
        return self.current.is_word(*words)

    def at_symbol(self, *symbols: str) -> bool:
        return self.current.is_symbol(*symbols)

    def at_end(self) -> bool:
        """At the end of a statement: ``;`` or end of input."""
        return self.current.kind is TokenKind.EOF or self.at_symbol(";")

    def at_identifier(self, offset: int = 0) -> bool:
        return is_identifier_token(self.peek(offset))

    # -- consumption ------------------------------------------------------------------------

    def advance(self) -> Token:
        token = self.current
        if token.kind is not TokenKind.EOF:
            self.index += 1
        return token

    def accept_word(self, *words: str) -> Token | None:
        return self.advance() if self.at_word(*words) else None

    def accept_symbol(self, *symbols: str) -> Token | None:
        return self.advance() if self.at_symbol(*symbols) else None

    def accept_words(self, *words: str) -> bool:
        """Consume a whole keyword sequence (e.g. ``IF NOT EXISTS``) or nothing."""
        if all(self.peek(i).is_word(word) for i, word in enumerate(words)):
            self.index += len(words)
            return True
        return False

    def expect_word(self, *words: str) -> Token:
        if self.at_word(*words):
            return self.advance()
        self.fail_expecting(f"'{word}'" for word in words)

    def expect_symbol(self, symbol: str) -> Token:
        if self.at_symbol(symbol):
            return self.advance()
        if symbol in _CLOSERS:
            self.fail(f"missing '{symbol}' at {self.current.display()}")
        self.fail_expecting([f"'{symbol}'"])

    def expect_identifier(self) -> str:
        """A name: unquoted (upper-cased), quoted (case kept) or a non-reserved keyword."""
        token = self.current
        if is_identifier_token(token):
            self.advance()
            return token.value
        if token.kind is TokenKind.WORD and token.value in RESERVED:
            self.fail(
                f'"{token.text}" is a reserved keyword and it can\'t be used as an identifier.'
                f" You can use it as an identifier by escaping it as `{token.text}` "
            )
        self.fail_expecting(["IDENTIFIER"])

    def expect_string(self) -> str:
        if self.current.kind is TokenKind.STRING:
            return self.advance().value
        self.fail_expecting(["STRING"])

    def expect_integer(self, allow_negative: bool = False) -> int:
        negative = allow_negative and self.accept_symbol("-") is not None
        if self.current.kind is not TokenKind.INTEGER:
            self.fail_expecting(["INTEGER_VALUE"])
        value = int(self.advance().value)
        return -value if negative else value

    # -- errors -----------------------------------------------------------------------------

    def location(self, token: Token | None = None) -> Location:
        token = token or self.current
        return Location(token.line, token.column)

    def fail(self, detail: str, token: Token | None = None) -> NoReturn:
        """Raise a syntax error at ``token`` (default: the current one)."""
        token = token or self.current
        if token.kind is TokenKind.UNRECOGNIZED:
            detail = f"token recognition error at: {token.display()}"
        raise ParseError(detail, token.line, token.column)

    def fail_expecting(self, expected: Iterable[str]) -> NoReturn:
        names = list(expected)
        self.fail("Expecting {" + ", ".join(names) + "}" if names else "")

    def fail_unexpected(self) -> NoReturn:
        """No rule can start with the current token (ANTLR's "no viable alternative")."""
        if self.current.kind is TokenKind.EOF:
            self.fail("no viable alternative at input '<EOF>'")
        self.fail(f"no viable alternative at input {self.current.display()}")


def is_identifier_token(token: Token) -> bool:
    if token.kind in (TokenKind.QUOTED_IDENTIFIER, TokenKind.DIGIT_IDENTIFIER):
        return True
    return token.kind is TokenKind.WORD and token.value not in RESERVED
