"""The one exception the SQL front end raises for input it cannot parse.

It is a :class:`~cart_pipeline.engine.errors.KsqlStatementError`, so the REST layer answers it
like any other refused statement (a ``statement_error`` entity, code 40001) without special
cases. Its message has ksqlDB's shape, which clients and the conformance cases match on::

    line 1:32: Syntax Error
    Expecting {'STRING', INTEGER_VALUE}
    Statement: CREATE STREAM INPUT (K DOUBLE (KEY)) WITH (...);
"""

from __future__ import annotations

from cart_pipeline.engine.errors import BAD_STATEMENT, KsqlStatementError

__all__ = ["ParseError"]


class ParseError(KsqlStatementError):
    """A syntax error at ``line``:``column`` (1-based, counted over the whole request text).

    ``detail`` is the ANTLR-style explanation (``missing ')' at ','``, ``Expecting {...}``,
    or empty, as ksqlDB prints it); ``statement_text`` is the statement being parsed.
    """

    def __init__(
        self,
        detail: str,
        line: int,
        column: int,
        statement_text: str = "",
        headline: str = "Syntax Error",
    ) -> None:
        self.detail = detail
        self.line = line
        self.column = column
        self.headline = headline
        super().__init__(self._render(statement_text), statement_text, BAD_STATEMENT)

    def _render(self, statement_text: str) -> str:
        message = f"line {self.line}:{self.column}: {self.headline}\n{self.detail}"
        return f"{message}\nStatement: {statement_text}" if statement_text else message

    def with_statement(self, statement_text: str) -> ParseError:
        """The same error, naming the statement it happened in."""
        return ParseError(self.detail, self.line, self.column, statement_text, self.headline)
