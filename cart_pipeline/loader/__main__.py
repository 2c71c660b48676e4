"""Generation speed benchmark: ``python -m cart_pipeline.loader --events 1000000``.

Measures generation alone (no Kafka): the ceiling a producer fed by this generator can reach.
"""

from __future__ import annotations

import argparse
import time

from cart_pipeline.loader.config import GeneratorConfig
from cart_pipeline.loader.generator import DEFAULT_BATCH_SIZE, CartEventGenerator


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Measure cart event generation speed.")
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--customers", type=int, default=1_000)
    parser.add_argument("--items", type=int, default=500)
    parser.add_argument("--skew", type=float, default=1.1)
    parser.add_argument("--malformed-share", type=float, default=0.0)
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE)
    args = parser.parse_args(argv)
    config = GeneratorConfig(
        n_events=args.events,
        seed=args.seed,
        n_customers=args.customers,
        n_items=args.items,
        skew=args.skew,
        malformed_share=args.malformed_share,
    )
    started = time.perf_counter()
    generator = CartEventGenerator(config, batch_size=args.batch_size)
    setup = time.perf_counter() - started
    started = time.perf_counter()
    size = 0
    for batch in generator.batches():
        size += len(batch)
    elapsed = time.perf_counter() - started
    stats = generator.stats()
    print(
        f"{size:,} records in {elapsed:.3f}s = {size / elapsed:,.0f} events/s "
        f"(setup {setup:.3f}s; adds {stats.adds:,}, removes {stats.removes:,}, "
        f"malformed {stats.malformed_total:,})"
    )


if __name__ == "__main__":
    main()
