"""Vectorised cart event stream: Zipf-popular adds, and removals that never overdraw a line.

Tracking every (customer, item) line and picking a non-empty one per removal would put a
Python-level step on every event (~1 us each). Instead every removal is *paired* with one
earlier add of the same line and takes back 1..q of that add's q units, a little later in
the stream. Each add has at most one removal, removals come strictly after their add, so
at every prefix of the stream a line's quantity is a sum of ``q - r >= 0`` terms (plus
not-yet-removed adds): never negative, and a removal only ever touches a line that holds
quantity. Everything is numpy over chunks of adds, so sampling costs a few ns per event.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

Int64Array = npt.NDArray[np.int64]

#: Adds generated per internal chunk. Fixed (not the caller's batch size) so the stream is
#: identical whatever batch size the consumer asks for.
ADD_CHUNK = 32_768
#: A removal lands 1..REMOVE_DELAY_MAX adds after the add it undoes (uniform), i.e. "soon".
REMOVE_DELAY_MAX = 2_000


class ZipfSampler:
    """Exact sampler of ranks 0..n-1 with P(rank k) proportional to 1/(k+1)**s.

    Uses Walker/Vose alias tables: O(1) per sample, about 3x cheaper than
    ``searchsorted`` on the CDF, which matters at millions of samples per second. The coin
    keeps ~53 - log2(n) bits of resolution: exact enough for any realistic pool.
    """

    def __init__(self, n: int, s: float) -> None:
        if n < 1:
            raise ValueError(f"ZipfSampler needs n >= 1, got {n}")
        if s < 0:
            raise ValueError(f"ZipfSampler needs s >= 0, got {s}")
        weights = np.arange(1, n + 1, dtype=np.float64) ** -float(s)
        self.n = n
        self.probabilities: npt.NDArray[np.float64] = weights / weights.sum()
        self._uniform = s == 0
        self._prob, self._alias = _alias_tables(self.probabilities)

    def sample(self, rng: np.random.Generator, size: int) -> Int64Array:
        """Draw ``size`` ranks from ``size`` uniforms (one each, whatever ``s`` is).

        One uniform per draw (integer part picks the column, fraction tosses the coin) so
        that drawing a+b samples at once or in two calls gives the same ranks.
        """
        scaled = rng.random(size) * self.n
        column = np.minimum(scaled.astype(np.int64), self.n - 1)
        if self._uniform:
            return column
        coin = scaled - column
        return np.where(coin < self._prob[column], column, self._alias[column])


def _alias_tables(p: npt.NDArray[np.float64]) -> tuple[npt.NDArray[np.float64], Int64Array]:
    n = p.size
    scaled = p * n
    prob = np.ones(n, dtype=np.float64)
    alias = np.arange(n, dtype=np.int64)
    small = [int(k) for k in np.flatnonzero(scaled < 1.0)]
    large = [int(k) for k in np.flatnonzero(scaled >= 1.0)]
    work = scaled.tolist()
    while small and large:
        lo, hi = small.pop(), large.pop()
        prob[lo] = work[lo]
        alias[lo] = hi
        work[hi] = (work[hi] + work[lo]) - 1.0
        (small if work[hi] < 1.0 else large).append(hi)
    # Leftovers are 1.0 up to rounding: they keep prob 1 and alias to themselves.
    return prob, alias


class CartStream:
    """Endless, deterministic stream of well-formed cart events as (customer, item, qty).

    Customers and items are indices into the pools; qty > 0 adds, qty < 0 removes. Any
    prefix of the stream is valid (no line ever below zero), so consumers may stop anywhere.
    """

    def __init__(
        self,
        rng: np.random.Generator,
        *,
        n_customers: int,
        n_items: int,
        skew: float,
        remove_probability: float,
        max_quantity: int,
    ) -> None:
        if not 0.0 <= remove_probability <= 0.5:
            raise ValueError(f"remove_probability must be in [0, 0.5], got {remove_probability}")
        self._rng = rng
        self._customers = ZipfSampler(n_customers, skew)
        self._items = ZipfSampler(n_items, skew)
        self._max_quantity = max_quantity
        # Share p of removals among events <=> each add is undone with chance p / (1 - p).
        self._undo_chance = remove_probability / (1.0 - remove_probability)
        self._next_tick = 0
        empty = np.empty(0, dtype=np.int64)
        self._pending: tuple[Int64Array, ...] = (empty, empty, empty, empty)
        self._ready: tuple[Int64Array, ...] = (empty, empty, empty)
        self._pos = 0

    @property
    def customer_sampler(self) -> ZipfSampler:
        """The customer popularity distribution (for keys of records outside the stream)."""
        return self._customers

    def take(self, n: int) -> tuple[Int64Array, Int64Array, Int64Array]:
        """Next ``n`` events as three int64 arrays (customer, item, qty)."""
        while self._ready[0].size - self._pos < n:
            fresh = self._chunk()
            self._ready = tuple(
                np.concatenate((old[self._pos :], new))
                for old, new in zip(self._ready, fresh, strict=True)
            )
            self._pos = 0
        start, self._pos = self._pos, self._pos + n
        customer, item, qty = (column[start : self._pos] for column in self._ready)
        return customer, item, qty

    def _chunk(self) -> tuple[Int64Array, Int64Array, Int64Array]:
        rng, size, first = self._rng, ADD_CHUNK, self._next_tick
        end = first + size
        self._next_tick = end
        customer = self._customers.sample(rng, size)
        item = self._items.sample(rng, size)
        qty = rng.integers(1, self._max_quantity + 1, size=size, dtype=np.int64)

        # Schedule removals for some of these adds, then release those due in this chunk.
        undone = np.flatnonzero(rng.random(size) < self._undo_chance)
        taken_back = (rng.random(undone.size) * qty[undone]).astype(np.int64) + 1  # 1..q
        due = first + undone + rng.integers(1, REMOVE_DELAY_MAX + 1, size=undone.size)
        p_due, p_cust, p_item, p_qty = (
            np.concatenate((old, new))
            for old, new in zip(
                self._pending, (due, customer[undone], item[undone], -taken_back), strict=True
            )
        )
        now = p_due < end
        later = ~now
        self._pending = (p_due[later], p_cust[later], p_item[later], p_qty[later])
        order = np.argsort(p_due[now], kind="stable")
        r_due, r_cust, r_item, r_qty = (a[now][order] for a in (p_due, p_cust, p_item, p_qty))

        # Merge: a removal due at tick d goes right after the add of tick d. With removals
        # sorted by d, the j-th one lands at (adds with tick <= d) + j.
        total = size + r_due.size
        slots = (r_due - first + 1) + np.arange(r_due.size, dtype=np.int64)
        is_removal = np.zeros(total, dtype=np.bool_)
        is_removal[slots] = True
        is_add = ~is_removal
        merged = []
        for add_values, removal_values in ((customer, r_cust), (item, r_item), (qty, r_qty)):
            column = np.empty(total, dtype=np.int64)
            column[is_add] = add_values
            column[slots] = removal_values
            merged.append(column)
        return merged[0], merged[1], merged[2]
