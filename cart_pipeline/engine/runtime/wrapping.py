"""Single-value wrapping: ksqlDB's WRAP_SINGLE_VALUE property and its serde features.

A value schema with one column is, by default, written as an object holding that column
(JSON: ``{"V": 1}``). ``WRAP_SINGLE_VALUE=false`` (or the
``ksql.persistence.wrap.single.values`` config) makes it the bare value (``1``): the
UNWRAP_SINGLES serde feature. KAFKA and DELIMITED values are always bare, so only
unwrapping is valid for them; JSON supports both.
"""

from __future__ import annotations

from collections.abc import Sequence

from cart_pipeline.engine.catalog.model import Column
from cart_pipeline.engine.errors import KsqlStatementError
from cart_pipeline.engine.runtime.serde import _EXACT_NUMBERS, _dumps, _loads, _loads_exact
from cart_pipeline.engine.types import coerce_json

PROPERTY = "WRAP_SINGLE_VALUE"
CONFIG = "ksql.persistence.wrap.single.values"
WRAP, UNWRAP = "WRAP_SINGLES", "UNWRAP_SINGLES"

#: the wrapping features each value format supports (ksqlDB's Format.supportedFeatures)
_SUPPORTED = {"JSON": {WRAP, UNWRAP}, "KAFKA": {UNWRAP}, "DELIMITED": {UNWRAP}}


def parse_flag(value: object) -> bool:
    """A WITH-clause boolean: a boolean literal or the string 'true'/'false'."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "false"):
        return text == "true"
    raise KsqlStatementError(
        f"Invalid value {value} for configuration {PROPERTY}: Expected value to be either "
        "true or false"
    )


def value_features(
    value_format: str,
    value_columns: Sequence[Column],
    explicit: bool | None,
    config: str | None,
) -> tuple[str, ...]:
    """The value serde features, as ksqlDB's SerdeFeaturesFactory.buildValueFeatures."""
    single = len(value_columns) == 1
    supported = _SUPPORTED.get(value_format, set())
    if explicit is not None:
        feature = WRAP if explicit else UNWRAP
        if feature not in supported:
            raise KsqlStatementError(
                f"Format '{value_format}' does not support '{PROPERTY}' set to "
                f"'{str(explicit).lower()}'."
            )
        if not single:
            raise KsqlStatementError(f"'{PROPERTY}' is only valid for single-field value schemas")
        return (feature,)
    if not single or config is None or config.strip().lower() not in ("true", "false"):
        return ()
    feature = WRAP if config.strip().lower() == "true" else UNWRAP
    return (feature,) if feature in supported else ()


class JsonUnwrappedValueSerde:
    """A single JSON value column written and read as the bare JSON value."""

    def __init__(self, columns: Sequence[Column]) -> None:
        self.columns = tuple(columns)

    def serialize(self, values: Sequence[object] | None) -> bytes | None:
        if values is None or values[0] is None:
            return None
        return _dumps(values[0])

    def deserialize(self, data: bytes | None) -> list[object] | None:
        if data is None:
            return None
        decoded = _loads(data)
        if decoded is None:
            return None
        col = self.columns[0]
        if type(decoded) is float and col.type.base in _EXACT_NUMBERS:
            decoded = _loads_exact(data)  # Java's exact BigDecimal reading of the digits
        return [coerce_json(decoded, col.type)]
