"""Partition-parallel recomputation: each worker process sums its own partitions.

Carts are keyed by customer, so a partition holds whole customers and can be summed on its
own; the partial results are folded with :meth:`Recomputation.merge` (a 32-bit wrapping sum,
so the order of the fold does not matter). Workers are *processes* — the per-record loop is
pure Python and holds the GIL — started with ``forkserver`` (``spawn`` where that does not
exist): a confluent-kafka client must never be inherited across a ``fork``.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor

from cart_pipeline.kafka_io import KafkaSettings
from cart_pipeline.reconcile.recompute import Recomputation, recompute_partition

#: (partition, start, end)
Slice = tuple[int, int, int]

#: Below this many offsets to read, starting worker processes (~0.5 s each, interpreter and
#: confluent-kafka import) costs more than it saves: read in-process.
MIN_PARALLEL_OFFSETS = 200_000


def to_slices(
    end_offsets: Mapping[int, int], start_offsets: Mapping[int, int] | None = None
) -> list[Slice]:
    return [(p, (start_offsets or {}).get(p, 0), end) for p, end in sorted(end_offsets.items())]


def default_workers(slices: Sequence[Slice], cpus: int | None = None) -> int:
    """min(partitions with data, CPUs - 1); 1 (in-process) for one partition or a small read.

    One CPU is left to librdkafka's fetch/decompression threads (and, often, a local broker):
    on 2 CPUs, 2 workers measured *slower* than 1 (BENCHMARKS.md, "Recomputation").
    """
    busy = [s for s in slices if s[2] > s[1]]
    if len(busy) <= 1 or sum(end - start for _, start, end in busy) < MIN_PARALLEL_OFFSETS:
        return 1
    cpus = (os.cpu_count() or 1) if cpus is None else cpus
    return max(1, min(len(busy), cpus - 1))


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
    """Sum the given partitions one after another into ``into`` (a worker's whole job)."""
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

    ``workers`` <= 1 (or a single partition) reads in-process, folding in place.
    """
    slices = to_slices(end_offsets, start_offsets)
    # Empty partitions only record their offsets: no worker for them.
    recompute_slices(settings, topic, [s for s in slices if s[2] <= s[1]], into)
    groups = assign([s for s in slices if s[2] > s[1]], workers)
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
