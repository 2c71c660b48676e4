"""Expression and type parsing, with ksqlDB's precedence.

ksqlDB separates *boolean* expressions (``OR`` < ``AND`` < ``NOT`` < one predicate) from
*value* expressions (``+ -`` < ``* / %`` < unary sign < postfix ``[i]`` / ``->f``). A predicate
(comparison, BETWEEN, IN, LIKE, IS [NOT] NULL, IS [NOT] DISTINCT FROM) joins two value
expressions and does not chain: ``a = b = c`` is a syntax error, as in ksqlDB. Some clauses
(GROUP BY, PARTITION BY, VALUES) take value expressions only, so ``GROUP BY a AND b`` fails.

A minus sign directly before a number is part of the literal (``-5`` is the INTEGER -5, not a
negation), which is how ksqlDB types and prints it.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Literal, TypeVar

from cart_pipeline.engine.sql import ast
from cart_pipeline.engine.sql.cursor import TokenCursor, is_identifier_token
from cart_pipeline.engine.sql.lexer import Token, TokenKind

__all__ = ["ExpressionParser"]

_Item = TypeVar("_Item")

_INT_MIN, _INT_MAX = -(2**31), 2**31 - 1
_BIGINT_MIN, _BIGINT_MAX = -(2**63), 2**63 - 1
_NUMBER_KINDS = (TokenKind.INTEGER, TokenKind.DECIMAL, TokenKind.FLOAT)
_COMPARISON_SYMBOLS = ("=", "<>", "<", "<=", ">", ">=")
# Units that are reserved words, so in an argument list they can only mean a unit.
_RESERVED_UNITS = frozenset(
    {"MILLISECOND", "YEARS", "MONTHS", "DAYS", "HOURS", "MINUTES", "SECONDS", "MILLISECONDS"}
)
_PRIMITIVE_TYPES: dict[str, ast.PrimitiveTypeName] = {
    "BOOLEAN": "BOOLEAN",
    "INT": "INTEGER",
    "INTEGER": "INTEGER",
    "BIGINT": "BIGINT",
    "DOUBLE": "DOUBLE",
    "STRING": "STRING",
    "VARCHAR": "STRING",
    "BYTES": "BYTES",
    "DATE": "DATE",
    "TIME": "TIME",
    "TIMESTAMP": "TIMESTAMP",
}


class ExpressionParser(TokenCursor):
    """Recursive descent for expressions and types over a :class:`TokenCursor`."""

    # -- boolean level ----------------------------------------------------------------------

    def parse_expression(self) -> ast.Expression:
        left = self._parse_and()
        while (token := self.accept_word("OR")) is not None:
            right = self._parse_and()
            left = ast.LogicalBinary("OR", left, right, location=self.location(token))
        return left

    def _parse_and(self) -> ast.Expression:
        left = self._parse_not()
        while (token := self.accept_word("AND")) is not None:
            right = self._parse_not()
            left = ast.LogicalBinary("AND", left, right, location=self.location(token))
        return left

    def _parse_not(self) -> ast.Expression:
        if (token := self.accept_word("NOT")) is not None:
            return ast.Not(self._parse_not(), location=self.location(token))
        return self._parse_predicated()

    def _parse_predicated(self) -> ast.Expression:
        value = self.parse_value_expression()
        token = self.current
        location = self.location(token)
        if token.kind is TokenKind.SYMBOL and token.value in _COMPARISON_SYMBOLS:
            self.advance()
            operator: ast.ComparisonOperator = token.value  # type: ignore[assignment]
            return ast.Comparison(operator, value, self.parse_value_expression(), location=location)
        if self.at_word("IS"):
            return self._parse_is(value, location)
        negated = self.at_word("NOT") and self.peek().is_word("BETWEEN", "IN", "LIKE")
        if negated:
            self.advance()
        predicate: ast.Expression
        if self.accept_word("BETWEEN"):
            lower = self.parse_value_expression()
            self.expect_word("AND")
            upper = self.parse_value_expression()
            predicate = ast.Between(value, lower, upper, location=location)
        elif self.accept_word("IN"):
            self.expect_symbol("(")
            values = self._parse_list(self.parse_expression, ")")
            predicate = ast.InList(value, values, location=location)
        elif self.accept_word("LIKE"):
            pattern = self.parse_value_expression()
            escape = self.expect_string() if self.accept_word("ESCAPE") else None
            predicate = ast.Like(value, pattern, escape, location=location)
        else:
            return value
        return ast.Not(predicate, location=location) if negated else predicate

    def _parse_is(self, value: ast.Expression, location: ast.Location) -> ast.Expression:
        self.expect_word("IS")
        negated = self.accept_word("NOT") is not None
        if self.accept_word("NULL"):
            return ast.IsNull(value, negated, location=location)
        if self.accept_word("DISTINCT"):
            self.expect_word("FROM")
            operator: ast.ComparisonOperator = (
                "IS NOT DISTINCT FROM" if negated else "IS DISTINCT FROM"
            )
            return ast.Comparison(operator, value, self.parse_value_expression(), location=location)
        self.fail_expecting(["'DISTINCT'", "'NULL'"])

    # -- value level ------------------------------------------------------------------------

    def parse_value_expression(self) -> ast.Expression:
        left = self._parse_multiplicative()
        while self.at_symbol("+", "-"):
            token = self.advance()
            right = self._parse_multiplicative()
            operator: ast.ArithmeticOperator = token.value  # type: ignore[assignment]
            left = ast.ArithmeticBinary(operator, left, right, location=self.location(token))
        return left

    def _parse_multiplicative(self) -> ast.Expression:
        left = self._parse_unary()
        while self.at_symbol("*", "/", "%"):
            token = self.advance()
            right = self._parse_unary()
            operator: ast.ArithmeticOperator = token.value  # type: ignore[assignment]
            left = ast.ArithmeticBinary(operator, left, right, location=self.location(token))
        return left

    def _parse_unary(self) -> ast.Expression:
        token = self.current
        if token.is_symbol("-") and self.peek().kind in _NUMBER_KINDS:
            return self._parse_postfix(self._parse_number())
        if token.is_symbol("-", "+"):
            self.advance()
            sign: Literal["+", "-"] = "-" if token.value == "-" else "+"
            return ast.ArithmeticUnary(sign, self._parse_unary(), location=self.location(token))
        return self._parse_postfix(self._parse_primary())

    def _parse_postfix(self, base: ast.Expression) -> ast.Expression:
        while True:
            token = self.current
            if token.is_symbol("["):
                self.advance()
                index = self.parse_value_expression()
                self.expect_symbol("]")
                base = ast.Subscript(base, index, location=self.location(token))
            elif token.is_symbol("->") and not self.peek().is_symbol("*"):
                self.advance()
                base = ast.Dereference(
                    base, self.expect_identifier(), location=self.location(token)
                )
            else:
                return base

    # -- primaries --------------------------------------------------------------------------

    def _parse_primary(self) -> ast.Expression:
        token = self.current
        location = self.location(token)
        kind = token.kind
        if (
            kind in _NUMBER_KINDS
            or kind is TokenKind.STRING
            or token.is_word("NULL", "TRUE", "FALSE")
        ):
            return self.parse_literal()
        if token.is_symbol("("):
            self.advance()
            inner = self.parse_expression()
            self.expect_symbol(")")
            return inner
        if kind is TokenKind.WORD:
            if token.value == "CASE":
                return self._parse_case()
            if token.value == "CAST":
                return self._parse_cast()
            constructor = self._parse_constructor(token)
            if constructor is not None:
                return constructor
        if not is_identifier_token(token):
            self.fail_unexpected()
        name = self.expect_identifier()
        if self.at_symbol("("):
            return self._parse_function_call(name, location)
        if self.at_symbol(".") and self.at_identifier(1):
            self.advance()
            return ast.ColumnRef(self.expect_identifier(), name, location=location)
        return ast.ColumnRef(name, location=location)

    def parse_literal(self) -> ast.Literal:
        """A literal on its own (WITH property values): no operators, only a leading minus."""
        token = self.current
        location = self.location(token)
        if token.kind in _NUMBER_KINDS or (
            token.is_symbol("-") and self.peek().kind in _NUMBER_KINDS
        ):
            return self._parse_number()
        if token.kind is TokenKind.STRING:
            self.advance()
            return ast.StringLiteral(token.value, location=location)
        if token.is_word("NULL"):
            self.advance()
            return ast.NullLiteral(location=location)
        if token.is_word("TRUE", "FALSE"):
            self.advance()
            return ast.BooleanLiteral(token.value == "TRUE", location=location)
        self.fail_expecting(
            [
                "NULL",
                "STRING",
                "INTEGER_VALUE",
                "DECIMAL_VALUE",
                "FLOATING_POINT_VALUE",
                "'TRUE'",
                "'FALSE'",
            ]
        )

    def _parse_number(self) -> ast.Literal:
        start = self.current
        negative = self.accept_symbol("-") is not None
        token = self.advance()
        text = ("-" if negative else "") + token.value
        location = self.location(start)
        if token.kind is TokenKind.INTEGER:
            value = int(text)
            if _INT_MIN <= value <= _INT_MAX:
                return ast.IntegerLiteral(value, location=location)
            if _BIGINT_MIN <= value <= _BIGINT_MAX:
                return ast.BigIntLiteral(value, location=location)
            self.fail(f"Invalid numeric literal: {text}", start)
        if token.kind is TokenKind.DECIMAL:
            try:
                return ast.DecimalLiteral(Decimal(text), location=location)
            except InvalidOperation:  # pragma: no cover - the lexer only yields digits
                self.fail(f"Invalid numeric literal: {text}", start)
        number = float(text)
        if number in (float("inf"), float("-inf")):
            self.fail(f"Number overflows DOUBLE: {text}", start)
        return ast.DoubleLiteral(number, location=location)

    def _parse_constructor(self, token: Token) -> ast.Expression | None:
        """ARRAY[...], MAP(k := v, ...), STRUCT(name := v, ...); else None (a plain name)."""
        location = self.location(token)
        if token.value == "ARRAY" and self.peek().is_symbol("["):
            self.index += 2
            return ast.ArrayConstructor(
                self._parse_list(self.parse_expression, "]"), location=location
            )
        if token.value == "MAP" and self.peek().is_symbol("("):
            self.index += 2
            return ast.MapConstructor(
                self._parse_list(self._parse_map_entry, ")"), location=location
            )
        if token.value == "STRUCT" and self.peek().is_symbol("("):
            self.index += 2
            return ast.StructConstructor(
                self._parse_list(self._parse_struct_entry, ")"), location=location
            )
        return None

    def _parse_map_entry(self) -> tuple[ast.Expression, ast.Expression]:
        key = self.parse_expression()
        self.expect_symbol(":=")
        return key, self.parse_expression()

    def _parse_struct_entry(self) -> tuple[str, ast.Expression]:
        name = self.expect_identifier()
        self.expect_symbol(":=")
        return name, self.parse_expression()

    def _parse_case(self) -> ast.Case:
        location = self.location()
        self.expect_word("CASE")
        operand = None if self.at_word("WHEN") else self.parse_value_expression()
        whens: list[ast.WhenClause] = []
        while self.accept_word("WHEN"):
            condition = self.parse_expression()
            self.expect_word("THEN")
            whens.append(ast.WhenClause(condition, self.parse_expression()))
        if not whens:
            self.fail_expecting(["'WHEN'"])
        default = self.parse_expression() if self.accept_word("ELSE") else None
        self.expect_word("END")
        return ast.Case(operand, tuple(whens), default, location=location)

    def _parse_cast(self) -> ast.Cast:
        location = self.location()
        self.expect_word("CAST")
        self.expect_symbol("(")
        operand = self.parse_expression()
        self.expect_word("AS")
        sql_type = self.parse_type()
        self.expect_symbol(")")
        return ast.Cast(operand, sql_type, location=location)

    def _parse_function_call(self, name: str, location: ast.Location) -> ast.FunctionCall:
        self.expect_symbol("(")
        if self.at_symbol("*") and self.peek().is_symbol(")"):
            self.index += 2
            return ast.FunctionCall(name, (), star=True, location=location)
        args = self._parse_list(self._parse_function_argument, ")")
        return ast.FunctionCall(name, args, location=location)

    def _parse_function_argument(self) -> ast.Expression:
        token = self.current
        if token.is_word(*_RESERVED_UNITS) and self.peek().is_symbol(",", ")"):
            self.advance()
            return ast.IntervalUnit(token.value, location=self.location(token))
        parameters = self._lambda_parameters()
        if parameters is None:
            return self.parse_expression()
        self.expect_symbol("=>")
        return ast.Lambda(parameters, self.parse_expression(), location=self.location(token))

    def _lambda_parameters(self) -> tuple[str, ...] | None:
        """Consume ``x`` or ``(x, y)`` if an ``=>`` follows them; else consume nothing."""
        if self.at_identifier() and self.peek().is_symbol("=>"):
            return (self.expect_identifier(),)
        if not self.at_symbol("("):
            return None
        offset = 1
        while self.at_identifier(offset):
            if self.peek(offset + 1).is_symbol(")"):
                if not self.peek(offset + 2).is_symbol("=>"):
                    return None
                self.advance()
                names = [self.expect_identifier()]
                while self.accept_symbol(","):
                    names.append(self.expect_identifier())
                self.expect_symbol(")")
                return tuple(names)
            if not self.peek(offset + 1).is_symbol(","):
                return None
            offset += 2
        return None

    def _parse_list(self, parse_item: Callable[[], _Item], closer: str) -> tuple[_Item, ...]:
        """Items separated by commas up to ``closer`` (already past the opener); may be empty."""
        items: list[_Item] = []
        if self.accept_symbol(closer):
            return ()
        while True:
            items.append(parse_item())
            if self.accept_symbol(closer):
                return tuple(items)
            if not self.accept_symbol(","):
                self.expect_symbol(closer)

    # -- types ------------------------------------------------------------------------------

    def parse_type(self) -> ast.SqlType:
        sql_type = self._parse_base_type()
        while self.accept_word("ARRAY"):  # ksqlDB's postfix form: INT ARRAY
            sql_type = ast.ArrayType(sql_type)
        return sql_type

    def _parse_base_type(self) -> ast.SqlType:
        token = self.current
        if token.is_word("ARRAY") and self.peek().is_symbol("<"):
            self.index += 2
            element = self.parse_type()
            self.expect_symbol(">")
            return ast.ArrayType(element)
        if token.is_word("MAP") and self.peek().is_symbol("<"):
            self.index += 2
            key = self.parse_type()
            self.expect_symbol(",")
            value = self.parse_type()
            self.expect_symbol(">")
            return ast.MapType(key, value)
        if token.is_word("STRUCT") and self.peek().is_symbol("<", "<>"):
            return self._parse_struct_type()
        if token.is_word("DECIMAL"):
            self.advance()
            self.expect_symbol("(")
            precision = self.expect_integer()
            self.expect_symbol(",")
            scale = self.expect_integer()
            self.expect_symbol(")")
            return ast.DecimalType(precision, scale)
        if not is_identifier_token(token):
            self.expect_identifier()  # raises, with the reserved-keyword hint when apt
        name = self.expect_identifier()
        if self.at_symbol("("):
            self._skip_type_parameters()
        if token.kind is TokenKind.WORD and name in _PRIMITIVE_TYPES:
            return ast.PrimitiveType(_PRIMITIVE_TYPES[name])
        return ast.CustomType(name)

    def _parse_struct_type(self) -> ast.StructType:
        self.advance()
        if self.accept_symbol("<>"):
            return ast.StructType(())
        self.expect_symbol("<")
        fields: list[ast.StructField] = []
        if self.accept_symbol(">"):
            return ast.StructType(())
        while True:
            name = self.expect_identifier()
            fields.append(ast.StructField(name, self.parse_type()))
            if self.accept_symbol(">"):
                return ast.StructType(tuple(fields))
            if not self.accept_symbol(","):
                self.fail_expecting(["','", "'>'"])

    def _skip_type_parameters(self) -> None:
        """``VARCHAR(255)``: ksqlDB's grammar accepts ``NAME(n | 'STRING', ...)`` and ignores it."""
        self.expect_symbol("(")
        while True:
            if not (self.current.kind is TokenKind.INTEGER or self.at_word("STRING")):
                self.fail_expecting(["'STRING'", "INTEGER_VALUE"])
            self.advance()
            if self.accept_symbol(")"):
                return
            if not self.accept_symbol(","):
                self.fail_expecting(["','", "')'"])
