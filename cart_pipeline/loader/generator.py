"""Synthetic ``shopping_cart_events`` records, batch by batch, plus their expected totals.

Ties the pieces together: pools (names), :class:`CartStream` (what happens), malformed
placement (what ksqlDB must reject) and :class:`EventEncoder` (bytes for the producer).
Records come as :class:`EventBatch` of pre-encoded ``(key, value)`` so a producer's loop is
just ``produce(topic, value, key)``. The generator also keeps the independent truth the
pipeline is checked against: ``SUM(qty)`` per (customer, item) over well-formed records.

Benchmark: ``python -m cart_pipeline.loader --events 1000000``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

import numpy as np

from cart_pipeline.loader.carts import CartStream, Int64Array
from cart_pipeline.loader.config import GeneratorConfig
from cart_pipeline.loader.encoding import EventEncoder
from cart_pipeline.loader.malformed import (
    MALFORMED_KINDS,
    MalformedKind,
    malformed_ordinals,
    malformed_variants,
    share_fraction,
)
from cart_pipeline.loader.pools import build_customer_pool, build_item_pool

DEFAULT_BATCH_SIZE = 65_536
#: Up to this many (customer, item) lines the totals live in a dense array (8 B per line);
#: beyond it, in a dict updated once per distinct line per batch.
DENSE_TOTALS_LIMIT = 1 << 22


@dataclass(frozen=True, slots=True)
class EventBatch:
    """Parallel lists of record keys and values (UTF-8 customer, JSON object bytes).

    Two lists rather than a list of tuples: building a million tuples costs about as much
    as building the values. Iterate the batch for ``(key, value)`` pairs.
    """

    keys: list[bytes]
    values: list[bytes]

    def __len__(self) -> int:
        return len(self.values)

    def __iter__(self) -> Iterator[tuple[bytes, bytes]]:
        return zip(self.keys, self.values, strict=True)


@dataclass(frozen=True, slots=True)
class GenerationStats:
    """Counts over the records yielded so far; ``malformed`` has every kind, zeros too."""

    records: int
    well_formed: int
    adds: int
    removes: int
    malformed: Mapping[MalformedKind, int] = field(default_factory=dict)

    @property
    def malformed_total(self) -> int:
        return sum(self.malformed.values())


class CartEventGenerator:
    """One deterministic run of ``config.n_events`` records.

    Single use: :meth:`batches` may be iterated once; :meth:`expected_totals` and
    :meth:`stats` describe the records yielded so far (the whole run once exhausted).
    Output is independent of ``batch_size``.
    """

    def __init__(self, config: GeneratorConfig, *, batch_size: int = DEFAULT_BATCH_SIZE) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
        self.config = config
        self.batch_size = batch_size
        self.customers: tuple[str, ...] = build_customer_pool(config.n_customers, config.seed)
        self.items: tuple[str, ...] = build_item_pool(config.n_items, config.seed)

        variants = [malformed_variants(k, self.customers, self.items) for k in MALFORMED_KINDS]
        self._variant_count = np.array([len(v) for v in variants], dtype=np.int64)
        self._variant_offset = np.cumsum(self._variant_count) - self._variant_count
        self._encoder = EventEncoder(
            self.customers,
            self.items,
            config.max_quantity,
            extra_values=[value for group in variants for value in group],
        )
        cart_seed, key_seed = np.random.SeedSequence(config.seed).spawn(2)
        self._stream = CartStream(
            np.random.Generator(np.random.PCG64(cart_seed)),
            n_customers=config.n_customers,
            n_items=config.n_items,
            skew=config.skew,
            remove_probability=config.remove_probability,
            max_quantity=config.max_quantity,
        )
        # Keys of malformed records come from their own stream so that the share of
        # malformed records never shifts the well-formed events.
        self._key_rng = np.random.Generator(np.random.PCG64(key_seed))
        self._share = share_fraction(config.malformed_share)

        n_lines = config.n_customers * config.n_items
        self._dense = n_lines <= DENSE_TOTALS_LIMIT
        self._totals = np.zeros(n_lines if self._dense else 0, dtype=np.int64)
        self._seen = np.zeros(n_lines if self._dense else 0, dtype=np.bool_)
        self._sparse_totals: dict[int, int] = {}
        self._adds = 0
        self._removes = 0
        self._malformed = np.zeros(len(MALFORMED_KINDS), dtype=np.int64)
        self._started = False

    def batches(self) -> Iterator[EventBatch]:
        """Yield the run's records in order, ``batch_size`` at a time (last may be short)."""
        if self._started:
            raise RuntimeError("CartEventGenerator is single use: create a new one to rerun")
        self._started = True
        return self._run()

    def _run(self) -> Iterator[EventBatch]:
        total = self.config.n_events
        for start in range(0, total, self.batch_size):
            count = min(self.batch_size, total - start)
            yield self._batch(start, count)

    def _batch(self, start: int, count: int) -> EventBatch:
        if self._share == 0:
            customer, item, qty = self._stream.take(count)
            self._account(customer, item, qty)
            return EventBatch(*self._encoder.encode(customer, customer, item, qty))

        ordinals = malformed_ordinals(start, count, self._share)
        bad = ordinals[1:] > ordinals[:-1]
        bad_ordinal = ordinals[:-1][bad]
        good = ~bad
        customer, item, qty = self._stream.take(count - bad_ordinal.size)
        self._account(customer, item, qty)

        kind = bad_ordinal % len(MALFORMED_KINDS)
        self._malformed += np.bincount(kind, minlength=len(MALFORMED_KINDS))
        variant = (bad_ordinal // len(MALFORMED_KINDS)) % self._variant_count[kind]
        key_customer = np.empty(count, dtype=np.int64)
        key_customer[good] = customer
        key_customer[bad] = self._stream.customer_sampler.sample(self._key_rng, bad_ordinal.size)
        heads = np.empty(count, dtype=np.int64)
        heads[good] = customer
        heads[bad] = self._encoder.extra_head(self._variant_offset[kind] + variant)
        items = np.full(count, -1, dtype=np.int64)
        items[good] = item
        qtys = np.zeros(count, dtype=np.int64)
        qtys[good] = qty
        return EventBatch(*self._encoder.encode(key_customer, heads, items, qtys))

    def _account(self, customer: Int64Array, item: Int64Array, qty: Int64Array) -> None:
        adds = int(np.count_nonzero(qty > 0))
        self._adds += adds
        self._removes += qty.size - adds
        line = customer * self.config.n_items + item
        if self._dense:
            np.add.at(self._totals, line, qty)
            self._seen[line] = True
            return
        lines, inverse = np.unique(line, return_inverse=True)
        sums = np.zeros(lines.size, dtype=np.int64)
        np.add.at(sums, inverse, qty)
        totals = self._sparse_totals
        for key, value in zip(lines.tolist(), sums.tolist(), strict=True):
            totals[key] = totals.get(key, 0) + value

    def expected_totals(self) -> dict[tuple[str, str], int]:
        """``SUM(qty)`` per (customer, item) over the well-formed records yielded so far.

        Every line that appeared is present, including those summing to 0 (ksqlDB keeps
        such rows in ``current_shopping_cart``). Malformed records never contribute.
        """
        if self._dense:
            lines = np.flatnonzero(self._seen)
            sums = self._totals[lines].tolist()
            pairs = zip(lines.tolist(), sums, strict=True)
        else:
            pairs = zip(self._sparse_totals.keys(), self._sparse_totals.values(), strict=True)
        n_items, customers, items = self.config.n_items, self.customers, self.items
        return {(customers[line // n_items], items[line % n_items]): total for line, total in pairs}

    def stats(self) -> GenerationStats:
        malformed = dict(zip(MALFORMED_KINDS, self._malformed.tolist(), strict=True))
        return GenerationStats(
            records=self._adds + self._removes + sum(malformed.values()),
            well_formed=self._adds + self._removes,
            adds=self._adds,
            removes=self._removes,
            malformed=malformed,
        )


@dataclass(frozen=True, slots=True)
class GeneratedRun:
    """A whole run in memory: for tests and small loads, not for 100M-event benchmarks."""

    records: list[tuple[bytes, bytes]]
    expected_totals: dict[tuple[str, str], int]
    stats: GenerationStats


def generate(config: GeneratorConfig, *, batch_size: int = DEFAULT_BATCH_SIZE) -> GeneratedRun:
    """Run a generator to the end and keep everything."""
    generator = CartEventGenerator(config, batch_size=batch_size)
    records = [pair for batch in generator.batches() for pair in batch]
    return GeneratedRun(records, generator.expected_totals(), generator.stats())
