"""Render Python values as ksqlDB SQL text, safely.

The pipeline builds SQL strings; these helpers are the only place quoting happens.
Rules follow ksqlDB's lexer (``SqlBase.g4``):

* identifiers are always back-quoted and a back-quote inside one is doubled
  (``BACKQUOTED_IDENTIFIER: '`' (~'`' | '``')* '`'``). Back-quoted names are
  case-sensitive: pass the exact name ksqlDB reports (unquoted DDL upper-cases it);
* string literals are single-quoted with ``'`` doubled
  (``STRING: '\\'' (~'\\'' | '\\'\\'')* '\\''``); nothing else needs escaping, so
  semicolons, newlines, ``--``/``/* */`` and any script stay inside the literal.

Caveat: ksqlDB substitutes ``${name}`` references, also inside string literals, but
only for variables defined in the same request (``DEFINE`` or ``sessionVariables``).
:class:`~cart_pipeline.ksql.KsqlClient` never sends session variables, so a value
such as ``'${x}'`` arrives verbatim unless the caller's own script DEFINEs ``x``.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from ._errors import KsqlRenderError

__all__ = ["quote_identifier", "quote_literal", "render_insert_values"]

_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1


def quote_identifier(name: str) -> str:
    """Back-quote ``name`` as one ksqlDB identifier (``a`b`` -> ```a``b```)."""
    if not isinstance(name, str):
        raise KsqlRenderError(f"identifier must be str, got {type(name).__name__}")
    if not name:
        raise KsqlRenderError("identifier must not be empty")
    return "`" + name.replace("`", "``") + "`"


def _quote_string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _render_float(value: float) -> str:
    if math.isnan(value) or math.isinf(value):
        raise KsqlRenderError(
            f"cannot render {value!r}: ksqlDB has no NaN/Infinity literal; use NULL instead"
        )
    # repr() is the shortest exact round-trip; an exponent makes ksqlDB type it DOUBLE
    # (a plain ``1.5`` would be a DECIMAL literal).
    text = repr(value).upper()
    return text if "E" in text else text + "E0"


def _render_decimal(value: Decimal) -> str:
    if not value.is_finite():
        raise KsqlRenderError(f"cannot render Decimal {value}: not a finite number")
    return format(value, "f")


def _render_datetime(value: dt.datetime) -> str:
    if value.tzinfo is None or value.utcoffset() is None:
        raise KsqlRenderError(
            f"cannot render naive datetime {value.isoformat()}: attach a timezone "
            "(it is sent as UTC)"
        )
    utc = value.astimezone(dt.UTC)
    return _quote_string(utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}")


def quote_literal(value: Any) -> str:
    """Render ``value`` as a ksqlDB literal.

    ``None`` -> ``NULL``; ``bool`` -> ``TRUE``/``FALSE``; ``int`` (64-bit) as is;
    ``float`` -> DOUBLE literal (``1.5E0``; NaN/inf rejected); ``Decimal`` -> DECIMAL
    literal; ``str`` -> quoted string; aware ``datetime`` -> UTC string
    ``'YYYY-MM-DDTHH:MM:SS.mmm'`` (ksqlDB converts it for TIMESTAMP columns);
    ``date``/``time`` -> ISO strings; list/tuple -> ``ARRAY[...]``; dict with str
    keys -> ``MAP(k := v, ...)``. Anything else raises :class:`KsqlRenderError`.
    """
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        if not _INT64_MIN <= value <= _INT64_MAX:
            raise KsqlRenderError(
                f"cannot render int {value}: outside BIGINT range; use Decimal for DECIMAL"
            )
        return str(value)
    if isinstance(value, float):
        return _render_float(value)
    if isinstance(value, Decimal):
        return _render_decimal(value)
    if isinstance(value, str):
        return _quote_string(value)
    if isinstance(value, dt.datetime):
        return _render_datetime(value)
    if isinstance(value, dt.date):
        return _quote_string(value.isoformat())
    if isinstance(value, dt.time):
        if value.tzinfo is not None:
            raise KsqlRenderError("cannot render a timezone-aware time; ksqlDB TIME has no zone")
        return _quote_string(value.isoformat(timespec="milliseconds"))
    if isinstance(value, list | tuple):
        return "ARRAY[" + ", ".join(quote_literal(item) for item in value) + "]"
    if isinstance(value, Mapping):
        parts = []
        for key, item in value.items():
            if not isinstance(key, str):
                raise KsqlRenderError(
                    f"cannot render map key {key!r}: ksqlDB map keys must be strings"
                )
            parts.append(f"{_quote_string(key)} := {quote_literal(item)}")
        return "MAP(" + ", ".join(parts) + ")"
    raise KsqlRenderError(f"cannot render value of type {type(value).__name__} as a ksqlDB literal")


def render_insert_values(source: str, row: Mapping[str, Any]) -> str:
    """``INSERT INTO `source` (`col`, ...) VALUES (lit, ...);`` for one row.

    Column names are the exact (case-sensitive) names of ``source``'s columns.
    """
    if not isinstance(row, Mapping) or not row:
        raise KsqlRenderError("row must be a non-empty mapping of column name -> value")
    columns: Sequence[str] = list(row.keys())
    values = [quote_literal(row[column]) for column in columns]
    column_sql = ", ".join(quote_identifier(column) for column in columns)
    return f"INSERT INTO {quote_identifier(source)} ({column_sql}) VALUES ({', '.join(values)});"
