"""Tokeniser for ksqlDB's SQL dialect.

It follows the lexical rules of ksqlDB's ANTLR grammar (SqlBase.g4) so that token boundaries,
and therefore the line:column positions in error messages, match what ksqlDB reports:

- keywords and unquoted identifiers are case-insensitive (we keep the original text and an
  upper-cased ``value``); back-quoted (`` `x` ``) and double-quoted (``"x"``) identifiers keep
  their case, with doubled quote characters as escapes;
- strings use single quotes, ``''`` escapes a quote;
- ``123`` is an INTEGER, ``1.5`` / ``.5`` / ``1.`` a DECIMAL, anything with an exponent a FLOAT;
  a digit followed by letters (``1abc``) is a DIGIT_IDENTIFIER;
- ``--`` comments run to the end of the line, ``/* */`` comments may span lines.

The lexer never raises: text it cannot make sense of (a stray ``#``, an unterminated string)
becomes an UNRECOGNIZED token, and the parser reports it with the right statement and position.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = ["Token", "TokenKind", "tokenize"]


class TokenKind(enum.Enum):
    WORD = "IDENTIFIER"  # keyword or unquoted identifier; ``value`` is upper-cased
    QUOTED_IDENTIFIER = "QUOTED_IDENTIFIER"  # `x` or "x"; ``value`` is unescaped, case kept
    DIGIT_IDENTIFIER = "DIGIT_IDENTIFIER"
    STRING = "STRING"  # ``value`` is unescaped
    INTEGER = "INTEGER_VALUE"
    DECIMAL = "DECIMAL_VALUE"
    FLOAT = "FLOATING_POINT_VALUE"
    VARIABLE = "VARIABLE"  # ${name}; ``value`` is the name
    SYMBOL = "SYMBOL"  # punctuation and operators; ``value`` is the symbol
    UNRECOGNIZED = "UNRECOGNIZED"
    EOF = "EOF"


@dataclass(frozen=True, slots=True)
class Token:
    """One token with its source span (``start``/``end`` are offsets into the request text)."""

    kind: TokenKind
    text: str
    value: str
    start: int
    end: int
    line: int
    column: int  # 1-based, as ksqlDB reports it

    def is_word(self, *words: str) -> bool:
        """True for an unquoted word equal (case-insensitively) to one of ``words``."""
        return self.kind is TokenKind.WORD and self.value in words

    def is_symbol(self, *symbols: str) -> bool:
        return self.kind is TokenKind.SYMBOL and self.value in symbols

    def display(self) -> str:
        """The token as ANTLR shows it in error messages: ``'text'`` or ``<EOF>``."""
        if self.kind is TokenKind.EOF:
            return "<EOF>"
        return "'" + self.text.replace("\n", "\\n").replace("\t", "\\t") + "'"


# Longest first, so that e.g. "<=" wins over "<".
_SYMBOLS = (
    "<>",
    "!=",
    "<=",
    ">=",
    "||",
    ":=",
    "->",
    "=>",
    "(",
    ")",
    "[",
    "]",
    ",",
    ".",
    ";",
    "*",
    "/",
    "%",
    "+",
    "-",
    "=",
    "<",
    ">",
)
_WORD_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_@")
_LETTERS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_")
_DIGITS = frozenset("0123456789")


def tokenize(text: str) -> list[Token]:
    """Split ``text`` into tokens, dropping whitespace and comments; the last token is EOF."""
    return _Lexer(text).run()


class _Lexer:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.line = 1
        self.line_start = 0
        self.tokens: list[Token] = []

    def run(self) -> list[Token]:
        text = self.text
        while True:
            self._skip_trivia()
            if self.pos >= len(text):
                break
            char = text[self.pos]
            if char in _LETTERS:
                end = self._scan_word_end(self.pos)
                word = text[self.pos : end]
                self._emit(TokenKind.WORD, end, word.upper())
            elif char in _DIGITS or (char == "." and self._peek(1) in _DIGITS):
                self._scan_number_or_digit_identifier()
            elif char == "'":
                self._scan_quoted("'", TokenKind.STRING)
            elif char in '`"':
                self._scan_quoted(char, TokenKind.QUOTED_IDENTIFIER)
            elif char == "$" and self._peek(1) == "{":
                self._scan_variable()
            else:
                self._scan_symbol()
        self.tokens.append(
            Token(
                TokenKind.EOF,
                "",
                "",
                len(text),
                len(text),
                self.line,
                len(text) - self.line_start + 1,
            )
        )
        return self.tokens

    def _peek(self, offset: int) -> str:
        index = self.pos + offset
        return self.text[index] if index < len(self.text) else ""

    def _emit(self, kind: TokenKind, end: int, value: str) -> None:
        token = Token(
            kind,
            self.text[self.pos : end],
            value,
            self.pos,
            end,
            self.line,
            self.pos - self.line_start + 1,
        )
        self.tokens.append(token)
        self._advance_to(end)

    def _advance_to(self, end: int) -> None:
        """Move to ``end``, keeping line bookkeeping right across embedded newlines."""
        newline = self.text.rfind("\n", self.pos, end)
        if newline >= 0:
            self.line += self.text.count("\n", self.pos, end)
            self.line_start = newline + 1
        self.pos = end

    def _skip_trivia(self) -> None:
        text = self.text
        while self.pos < len(text):
            char = text[self.pos]
            if char in " \t\r\n\f":
                self._advance_to(self.pos + 1)
            elif text.startswith("--", self.pos):
                newline = text.find("\n", self.pos)
                self._advance_to(len(text) if newline < 0 else newline + 1)
            elif text.startswith("/*", self.pos):
                close = text.find("*/", self.pos + 2)
                if close < 0:  # ksqlDB cannot lex it either: let the parser complain here
                    return
                self._advance_to(close + 2)
            else:
                return

    def _scan_word_end(self, start: int) -> int:
        end = start
        while end < len(self.text) and self.text[end] in _WORD_CHARS:
            end += 1
        return end

    def _scan_number_or_digit_identifier(self) -> None:
        text = self.text
        end = self.pos
        while end < len(text) and text[end] in _DIGITS:
            end += 1
        kind = TokenKind.INTEGER
        if end < len(text) and text[end] == ".":
            end += 1
            while end < len(text) and text[end] in _DIGITS:
                end += 1
            kind = TokenKind.DECIMAL
        exponent_end = self._exponent_end(end)
        if exponent_end > end:
            end, kind = exponent_end, TokenKind.FLOAT
        # A DIGIT_IDENTIFIER (digit then letters/digits) wins only when strictly longer.
        if text[self.pos] in _DIGITS:
            word_end = self._scan_word_end(self.pos)
            if word_end > end:
                self._emit(TokenKind.DIGIT_IDENTIFIER, word_end, text[self.pos : word_end].upper())
                return
        self._emit(kind, end, text[self.pos : end])

    def _exponent_end(self, index: int) -> int:
        text = self.text
        if index >= len(text) or text[index] not in "eE":
            return index
        cursor = index + 1
        if cursor < len(text) and text[cursor] in "+-":
            cursor += 1
        digits_start = cursor
        while cursor < len(text) and text[cursor] in _DIGITS:
            cursor += 1
        return cursor if cursor > digits_start else index

    def _scan_quoted(self, quote: str, kind: TokenKind) -> None:
        text = self.text
        cursor = self.pos + 1
        parts: list[str] = []
        while True:
            close = text.find(quote, cursor)
            if close < 0:
                self._emit(TokenKind.UNRECOGNIZED, self.pos + 1, quote)
                return
            parts.append(text[cursor:close])
            if text.startswith(quote * 2, close):
                parts.append(quote)
                cursor = close + 2
                continue
            self._emit(kind, close + 1, "".join(parts))
            return

    def _scan_variable(self) -> None:
        close = self.text.find("}", self.pos + 2)
        name = self.text[self.pos + 2 : close] if close >= 0 else ""
        if (
            close < 0
            or not name
            or name[0] not in _LETTERS
            or self._scan_word_end(self.pos + 2) != close
        ):
            self._emit(TokenKind.UNRECOGNIZED, self.pos + 1, "$")
            return
        self._emit(TokenKind.VARIABLE, close + 1, name.upper())

    def _scan_symbol(self) -> None:
        for symbol in _SYMBOLS:
            if self.text.startswith(symbol, self.pos):
                self._emit(
                    TokenKind.SYMBOL, self.pos + len(symbol), "<>" if symbol == "!=" else symbol
                )
                return
        self._emit(TokenKind.UNRECOGNIZED, self.pos + 1, self.text[self.pos])
