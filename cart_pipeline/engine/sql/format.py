"""Render expressions and types back to ksqlDB's canonical SQL text.

ksqlDB shows expressions this way in DESCRIBE output and in error messages, e.g.
``Non-aggregate SELECT expression(s) not part of GROUP BY: (F1 - F2)`` or
``Arithmetic on types ARRAY<INTEGER> and null ...: (ARRAY[1, 2, 3] + null)``: every binary
operation and predicate is parenthesised, keywords are upper case, ``null``/``true``/``false``
are lower case, and names are back-quoted only when they would not read back unchanged.

The output always parses back to an equal tree. Where that needs a departure from ksqlDB, it
is noted: a DOUBLE literal always carries an exponent (ksqlDB prints ``1.5`` for ``1.5E0``,
which would read back as a DECIMAL).
"""

from __future__ import annotations

import math

from cart_pipeline.engine.sql import ast
from cart_pipeline.engine.sql.keywords import needs_quotes

__all__ = ["format_expression", "format_identifier", "format_type"]


def format_identifier(name: str) -> str:
    """``NAME`` as is; ``name``, ``SELECT`` or ``a b`` back-quoted (with `` ` `` doubled)."""
    if needs_quotes(name):
        return "`" + name.replace("`", "``") + "`"
    return name


def format_type(sql_type: ast.SqlType) -> str:
    """``INTEGER``, ``DECIMAL(4, 2)``, ``ARRAY<STRING>``, ``STRUCT<A INTEGER, `b` STRING>``."""
    match sql_type:
        case ast.PrimitiveType(name):
            return name
        case ast.DecimalType(precision, scale):
            return f"DECIMAL({precision}, {scale})"
        case ast.ArrayType(element):
            return f"ARRAY<{format_type(element)}>"
        case ast.MapType(key, value):
            return f"MAP<{format_type(key)}, {format_type(value)}>"
        case ast.StructType(fields):
            inner = ", ".join(f"{format_identifier(f.name)} {format_type(f.type)}" for f in fields)
            return f"STRUCT<{inner}>"
        case ast.CustomType(name):
            return format_identifier(name)
    raise TypeError(f"not a SQL type: {sql_type!r}")


def format_expression(expression: ast.Expression) -> str:
    """ksqlDB's rendering of ``expression``, e.g. ``(SUM(QTY) > 1)``."""
    return _Formatter().render(expression)


class _Formatter:
    def render(self, node: ast.Expression) -> str:
        match node:
            case (
                ast.NullLiteral()
                | ast.BooleanLiteral()
                | ast.IntegerLiteral()
                | ast.BigIntLiteral()
                | ast.DecimalLiteral()
                | ast.DoubleLiteral()
                | ast.StringLiteral()
            ):
                return _literal(node)
            case ast.ColumnRef(name, source):
                column = format_identifier(name)
                return f"{format_identifier(source)}.{column}" if source else column
            case ast.Dereference(base, field_name):
                return f"{self.render(base)}->{format_identifier(field_name)}"
            case ast.Subscript(base, index):
                return f"{self.render(base)}[{self.render(index)}]"
            case ast.IntervalUnit(unit):
                return unit
            case ast.Lambda(parameters, body):
                names = ", ".join(format_identifier(p) for p in parameters)
                return f"({names}) => {self.render(body)}"
            case ast.FunctionCall(name, args, star):
                inner = "*" if star else self.join(args)
                return f"{format_identifier(name)}({inner})"
            case ast.Cast(operand, sql_type):
                return f"CAST({self.render(operand)} AS {format_type(sql_type)})"
            case ast.Case():
                return self.render_case(node)
            case ast.ArithmeticUnary(operator, operand):
                return self.render_unary(operator, operand)
            case (
                ast.ArithmeticBinary(operator, left, right)
                | ast.Comparison(operator, left, right)
                | ast.LogicalBinary(operator, left, right)
            ):
                return f"({self.render(left)} {operator} {self.render(right)})"
            case ast.IsNull(operand, negated):
                return f"({self.render(operand)} IS {'NOT ' if negated else ''}NULL)"
            case ast.Between(operand, lower, upper):
                return (
                    f"({self.render(operand)} BETWEEN {self.render(lower)}"
                    f" AND {self.render(upper)})"
                )
            case ast.InList(operand, values):
                return f"({self.render(operand)} IN ({self.join(values)}))"
            case ast.Like(operand, pattern, escape):
                suffix = "" if escape is None else f" ESCAPE {_quote(escape)}"
                return f"({self.render(operand)} LIKE {self.render(pattern)}{suffix})"
            case ast.Not(operand):
                return f"(NOT {self.render(operand)})"
            case ast.ArrayConstructor(items):
                return f"ARRAY[{self.join(items)}]"
            case ast.MapConstructor(entries):
                pairs = ", ".join(f"{self.render(k)}:={self.render(v)}" for k, v in entries)
                return f"MAP({pairs})"
            case ast.StructConstructor(fields):
                pairs = ", ".join(f"{format_identifier(n)}:={self.render(v)}" for n, v in fields)
                return f"STRUCT({pairs})"
        raise TypeError(f"not an expression: {node!r}")

    def join(self, nodes: tuple[ast.Expression, ...]) -> str:
        return ", ".join(self.render(n) for n in nodes)

    def render_case(self, node: ast.Case) -> str:
        parts = ["CASE"]
        if node.operand is not None:
            parts.append(self.render(node.operand))
        for when in node.whens:
            parts.append(f"WHEN {self.render(when.condition)} THEN {self.render(when.result)}")
        if node.default is not None:
            parts.append(f"ELSE {self.render(node.default)}")
        parts.append("END")
        return "(" + " ".join(parts) + ")"

    def render_unary(self, operator: str, operand: ast.Expression) -> str:
        value = self.render(operand)
        if isinstance(
            operand, ast.IntegerLiteral | ast.BigIntLiteral | ast.DecimalLiteral | ast.DoubleLiteral
        ) and not value.startswith("-"):
            value = f"({value})"  # "-5" would read back as the literal -5, not a negation
        separator = " " if value.startswith(operator) else ""  # "--" would start a comment
        return f"{operator}{separator}{value}"


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _literal(node: ast.Literal) -> str:
    match node:
        case ast.NullLiteral():
            return "null"
        case ast.BooleanLiteral(value):
            return "true" if value else "false"
        case ast.IntegerLiteral(value) | ast.BigIntLiteral(value):
            return str(value)
        case ast.DecimalLiteral(value):
            text = format(value, "f")
            return text if "." in text else text + "."
        case ast.DoubleLiteral(value):
            return _double(value)
        case ast.StringLiteral(value):
            return _quote(value)
    raise TypeError(f"not a literal: {node!r}")


def _double(value: float) -> str:
    """Java's ``Double.toString`` digits, always with an exponent: ``1.5E0``, ``1.0E-5``."""
    if math.isnan(value) or math.isinf(value):  # cannot come from the parser
        raise ValueError(f"no SQL literal for {value}")
    digits = repr(abs(value))
    if "e" in digits:
        mantissa, _, exponent = digits.partition("e")
    else:
        mantissa, exponent = _scientific(digits)
    if "." not in mantissa:
        mantissa += ".0"
    sign = "-" if math.copysign(1.0, value) < 0 else ""
    return f"{sign}{mantissa}E{int(exponent)}"


def _scientific(digits: str) -> tuple[str, str]:
    """``'1234.5'`` -> (``'1.2345'``, ``'3'``): move the point after the first significant digit."""
    whole, _, fraction = digits.partition(".")
    all_digits = (whole + fraction).lstrip("0")
    if not all_digits:
        return "0.0", "0"
    exponent = (
        len(whole.lstrip("0")) - 1
        if whole.lstrip("0")
        else -(len(fraction) - len(fraction.lstrip("0")) + 1)
    )
    significant = all_digits.rstrip("0") or "0"
    return f"{significant[0]}.{significant[1:] or '0'}", str(exponent)
