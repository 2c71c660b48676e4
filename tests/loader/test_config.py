from __future__ import annotations

import dataclasses
import math

import pytest

from cart_pipeline.loader import GeneratorConfig


def test_defaults_are_valid_and_frozen() -> None:
    config = GeneratorConfig()
    assert config.malformed_share == 0.0
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.n_events = 5  # type: ignore[misc]


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("n_events", -1, r"n_events must be >= 0, got -1"),
        ("n_events", 1.5, r"n_events must be an int, got float"),
        ("n_events", True, r"n_events must be an int, got bool"),
        ("seed", -3, r"seed must be >= 0"),
        ("n_customers", 0, r"n_customers must be >= 1, got 0"),
        ("n_items", -2, r"n_items must be >= 1"),
        ("max_quantity", 0, r"max_quantity must be >= 1"),
        ("skew", -0.1, r"skew must be a finite number in \[0.0, inf\), got -0.1"),
        ("skew", math.inf, r"skew must be a finite number"),
        ("skew", math.nan, r"skew must be a finite number"),
        ("skew", "1", r"skew must be a number, got str"),
        ("remove_probability", 0.6, r"remove_probability must be .* in \[0.0, 0.5\], got 0.6"),
        ("remove_probability", -0.01, r"remove_probability must be"),
        ("malformed_share", 1.01, r"malformed_share must be .* in \[0.0, 1.0\], got 1.01"),
        ("malformed_share", -0.5, r"malformed_share must be"),
    ],
)
def test_invalid_values_raise_clear_errors(field: str, value: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        GeneratorConfig(**{field: value})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "overrides",
    [
        {"n_events": 0},
        {"skew": 0.0},
        {"remove_probability": 0.0},
        {"remove_probability": 0.5},
        {"malformed_share": 1.0},
        {"malformed_share": 0},
        {"n_customers": 1, "n_items": 1},
    ],
)
def test_boundary_values_are_accepted(overrides: dict[str, float]) -> None:
    GeneratorConfig(**overrides)  # type: ignore[arg-type]
