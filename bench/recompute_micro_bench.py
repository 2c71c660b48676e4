"""CPU per event of the recomputation's fold, without Kafka: per-record loop vs batch fast path.

    .venv/bin/python bench/recompute_micro_bench.py            # 1M generated events, 3 rounds

The values are the loader's (``CartEventGenerator``, 1 % malformed), wrapped in
``confluent_kafka.Message`` objects and cut into batches of ``recompute.BATCH`` as
``consume()`` returns them. Timed with ``time.process_time``: the Message accessors, decoding
and the fold into the totals dict — everything ``recompute_partition`` does per record except
the fetch itself. Both paths must give the same totals and counts (checked).
"""

from __future__ import annotations

import argparse
import time
from collections import Counter

from confluent_kafka import Message

from cart_pipeline.loader import GeneratorConfig
from cart_pipeline.loader.generator import CartEventGenerator
from cart_pipeline.reconcile.fast_decode import NULL_KEY, TOMBSTONE, fold_batch, fold_record
from cart_pipeline.reconcile.recompute import BATCH

Result = tuple[dict[tuple[str, str], int], Counter[str], int, int]


def per_record(batches: list[list[Message]], end: int) -> Result:
    """The loop of ``recompute_partition`` with the fast path off (``fold_record`` per record)."""
    acc: dict[tuple[str, str], int] = {}
    rejected: Counter[str] = Counter()
    tombstones = null_keys = 0
    for batch in batches:
        for msg in batch:
            if msg.error() is not None:
                raise RuntimeError(msg.error())
            offset = msg.offset() or 0
            if offset >= end:
                break
            outcome = fold_record(msg.value(), acc, rejected)
            if outcome == TOMBSTONE:
                tombstones += 1
            elif outcome == NULL_KEY:
                null_keys += 1
    return acc, rejected, tombstones, null_keys


def batched(batches: list[list[Message]], end: int) -> Result:
    """The fast path's per-batch work in ``recompute_partition``."""
    acc: dict[tuple[str, str], int] = {}
    rejected: Counter[str] = Counter()
    tombstones = null_keys = 0
    for batch in batches:
        if list(map(Message.error, batch)).count(None) != len(batch):
            raise RuntimeError("error message")
        if (batch[-1].offset() or 0) >= end:
            raise RuntimeError("past the end")
        t, n = fold_batch(list(map(Message.value, batch)), acc, rejected)
        tombstones += t
        null_keys += n
    return acc, rejected, tombstones, null_keys


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    config = GeneratorConfig(n_events=args.events, seed=1, malformed_share=0.01)
    values = [v for b in CartEventGenerator(config).batches() for v in b.values]
    msgs = [Message(topic="t", partition=0, offset=i, value=v) for i, v in enumerate(values)]
    batches = [msgs[i : i + BATCH] for i in range(0, len(msgs), BATCH)]
    print(f"{len(values):,} values, {len(batches)} batches of {BATCH:,}")
    results: dict[str, Result] = {}
    times: dict[str, list[float]] = {"per-record loop": [], "batch fast path": []}
    for _ in range(args.rounds):
        for name, fn in (("per-record loop", per_record), ("batch fast path", batched)):
            started = time.process_time()
            results[name] = fn(batches, len(msgs))
            times[name].append(time.process_time() - started)
    assert results["per-record loop"] == results["batch fast path"], "paths disagree"
    acc, rejected, tombstones, null_keys = results["batch fast path"]
    print(f"keys {len(acc):,}, rejected {dict(rejected)}, tombstones {tombstones}, "
          f"null keys {null_keys}: identical on both paths")  # fmt: skip
    best = {name: min(t) for name, t in times.items()}
    for name, t in times.items():
        runs = ", ".join(f"{x / len(values) * 1e6:.2f}" for x in t)
        print(f"{name:16s} best {best[name] / len(values) * 1e6:.2f} µs/event  (runs: {runs})")
    print(f"speed-up {best['per-record loop'] / best['batch fast path']:.2f}x")


if __name__ == "__main__":
    main()
