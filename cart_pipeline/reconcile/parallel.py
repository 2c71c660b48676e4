"""Parallel recomputation: each worker process sums its own pieces of the log.

Carts are keyed by customer, so a partition holds whole customers and can be summed on its
own. So can any offset range of a partition: ``SUM`` is associative and commutative and the
32-bit wrap commutes with it, so the pieces' partial totals fold into the same result with
:meth:`Recomputation.merge` in any order. Splitting partitions into ranges is what lets a
single-partition topic (the tutorial's) use more than one core; a consumer that starts inside
a transaction still skips it if it was aborted (read_committed filters by the broker's list
of aborted transactions overlapping the fetch, as it does for any consumer resuming there).

Workers are *processes* — the fold runs Python code under the GIL — started with
``forkserver`` (``spawn`` where that does not exist): a confluent-kafka client must never be
inherited across a ``fork``.
"""

from __future__ import annotations

import itertools
import multiprocessing
import os
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor

from cart_pipeline.kafka_io import KafkaSettings
from cart_pipeline.reconcile.recompute import Recomputation, recompute_partition

#: (partition, start, end)
Slice = tuple[int, int, int]

#: A worker per this many offsets to read, at most one per CPU: starting one (~0.5 s:
#: interpreter, imports, consumer) costs what reading ~100,000 events does, so below ~2x that
#: the read stays in-process.
MIN_PARALLEL_OFFSETS = 200_000


def to_slices(
    end_offsets: Mapping[int, int], start_offsets: Mapping[int, int] | None = None
) -> list[Slice]:
    return [(p, (start_offsets or {}).get(p, 0), end) for p, end in sorted(end_offsets.items())]


def default_workers(slices: Sequence[Slice], cpus: int | None = None) -> int:
    """One worker per ``MIN_PARALLEL_OFFSETS`` offsets to read, at most one per CPU.

    1 means in-process. On this project's 2-CPU machine, quiet, 2 workers read 1.48x as fast
    as 1 (median of 3, 3M events; BENCHMARKS.md, "Parallel recomputation").
    """
    offsets = sum(max(0, end - start) for _, start, end in slices)
    cpus = (os.cpu_count() or 1) if cpus is None else cpus
    return max(1, min(cpus, offsets // MIN_PARALLEL_OFFSETS))


def split(slices: Sequence[Slice], workers: int) -> list[Slice]:
    """The non-empty slices, a big one cut into offset ranges so ``workers`` can share it.

    Each slice becomes ceil(size / (total / workers)) ranges of near-equal size: with several
    partitions of similar size none is cut; one partition is cut into ``workers`` ranges.
    """
    busy = [s for s in slices if s[2] > s[1]]
    total = sum(end - start for _, start, end in busy)
    if workers <= 1 or not total:
        return busy
    share = -(-total // workers)  # ceil
    pieces: list[Slice] = []
    for partition, start, end in busy:
        n = -(-(end - start) // share)
        bounds = [start + (end - start) * k // n for k in range(n + 1)]
        pieces += [(partition, lo, hi) for lo, hi in itertools.pairwise(bounds)]
    return pieces


def assign(slices: Sequence[Slice], workers: int) -> list[list[Slice]]:
    """Spread partitions over ``workers`` groups, biggest first onto the lightest group."""
    groups: list[list[Slice]] = [[] for _ in range(max(1, workers))]
    loads = [0] * len(groups)
    for piece in sorted(slices, key=lambda s: (s[1] - s[2], s[0])):
        lightest = loads.index(min(loads))
        groups[lightest].append(piece)
        loads[lightest] += piece[2] - piece[1]
    return [sorted(g) for g in groups if g]


def recompute_slices(
    settings: KafkaSettings,
    topic: str,
    slices: Sequence[Slice],
    into: Recomputation | None = None,
) -> Recomputation:
    """Sum the given slices one after another into ``into`` (a worker's whole job)."""
    total = Recomputation() if into is None else into
    for partition, start, end in slices:
        part = recompute_partition(settings, topic, partition, end, start, totals=total.totals)
        part.totals = {}  # already folded in place
        total.merge(part)
    return total


def _context() -> multiprocessing.context.BaseContext:
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")


def recompute_parallel(
    settings: KafkaSettings,
    topic: str,
    end_offsets: Mapping[int, int],
    start_offsets: Mapping[int, int] | None,
    workers: int,
    into: Recomputation,
) -> Recomputation:
    """Fold every partition of ``end_offsets`` into ``into`` using ``workers`` processes.

    ``workers`` <= 1 reads in-process, folding in place.
    """
    slices = to_slices(end_offsets, start_offsets)
    # Empty partitions only record their offsets: no worker for them.
    recompute_slices(settings, topic, [s for s in slices if s[2] <= s[1]], into)
    groups = assign(split(slices, workers), workers)
    if len(groups) <= 1:
        for group in groups:
            recompute_slices(settings, topic, group, into)
        return into
    with ProcessPoolExecutor(max_workers=len(groups), mp_context=_context()) as pool:
        futures = [pool.submit(recompute_slices, settings, topic, g) for g in groups]
        # Merge in submission order, so the result does not depend on completion order.
        for future in futures:
            into.merge(future.result())
    return into
