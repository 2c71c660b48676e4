"""Configuration of the synthetic cart event generator.

Validated eagerly so that a bad benchmark or test parameter fails at construction with a
message naming the field, instead of surfacing as a numpy error deep in a batch loop.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

#: Removals are paired one-to-one with earlier adds (see ``carts.py``), so they can never
#: outnumber adds: the share of removal events is capped at one half.
MAX_REMOVE_PROBABILITY = 0.5


@dataclass(frozen=True, slots=True)
class GeneratorConfig:
    """What to generate. Same config (incl. seed) -> byte-identical records.

    Attributes:
        n_events: total records produced, malformed ones included.
        seed: non-negative seed for pools, sampling and malformed placement.
        n_customers: size of the customer pool (Faker names, built once).
        n_items: size of the item catalog (built once).
        skew: Zipf exponent ``s`` for customer and item popularity; 0 means uniform.
        remove_probability: expected share of well-formed events that are removals,
            in [0, 0.5].
        max_quantity: an add puts 1..max_quantity units of an item into a cart.
        malformed_share: share of records (in [0, 1]) replaced by values ksqlDB rejects.
    """

    n_events: int = 100_000
    seed: int = 0
    n_customers: int = 1_000
    n_items: int = 500
    skew: float = 1.1
    remove_probability: float = 0.2
    max_quantity: int = 5
    malformed_share: float = 0.0

    def __post_init__(self) -> None:
        _check_int("n_events", self.n_events, minimum=0)
        _check_int("seed", self.seed, minimum=0)
        _check_int("n_customers", self.n_customers, minimum=1)
        _check_int("n_items", self.n_items, minimum=1)
        _check_int("max_quantity", self.max_quantity, minimum=1)
        _check_float("skew", self.skew, 0.0, math.inf)
        _check_float("remove_probability", self.remove_probability, 0.0, MAX_REMOVE_PROBABILITY)
        _check_float("malformed_share", self.malformed_share, 0.0, 1.0)


def _check_int(name: str, value: object, *, minimum: int) -> None:
    # bool is an int subclass; GeneratorConfig(n_events=True) is a bug, not 1 event.
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an int, got {type(value).__name__}: {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")


def _check_float(name: str, value: object, low: float, high: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} must be a number, got {type(value).__name__}: {value!r}")
    if math.isnan(value) or not (low <= value <= high) or math.isinf(value):
        upper = "inf)" if math.isinf(high) else f"{high}]"
        raise ValueError(f"{name} must be a finite number in [{low}, {upper}, got {value}")
