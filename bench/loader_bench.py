"""Loader throughput vs Kafka's own ProducerPerformance, on one fresh embedded broker.

    .venv/bin/python bench/loader_bench.py            # 1M events, 3 rounds (~3 min on 2 cores)
    .venv/bin/python bench/loader_bench.py --events 200000 --rounds 1 --profile

Why this comparison: ProducerPerformance is Kafka's reference producer (Java, no Python in
the loop). Run with the same record count, average value size and producer settings
(acks=all, idempotent, one transaction, same linger/batch/compression), it tells how much of
the broker's capacity on this machine the Python loader leaves unused. Rounds interleave the
contenders so that noise from other processes spreads over all of them; medians are
reported. ProducerPerformance runs twice: ``--record-size`` (random bytes of our mean value
size, incompressible) and ``--payload-file`` (our actual JSON values: same compressibility).
"""

from __future__ import annotations

import argparse
import cProfile
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from _common import (
    fresh_broker,
    fresh_topic,
    interleaved,
    machine,
    median,
    producer_performance,
    profile_report,
    write_results,
)
from rich.console import Console
from rich.table import Table

from cart_pipeline.kafka_io import KafkaSettings, Topics
from cart_pipeline.loader import CartEventGenerator, GeneratorConfig
from cart_pipeline.loader.producer import load_events, transaction_timeout_for

PARTITIONS = 6
TARGET_RATIO = 0.5
PAYLOAD_SAMPLE = 100_000


def measure_generation(config: GeneratorConfig) -> dict[str, float]:
    generator = CartEventGenerator(config)
    started = time.perf_counter()
    count = sum(len(batch) for batch in generator.batches())
    elapsed = time.perf_counter() - started
    return {"events": count, "elapsed_s": elapsed, "events_per_s": count / elapsed}


def measure_loader(
    settings: KafkaSettings, config: GeneratorConfig, profile: list[str] | None = None
) -> dict[str, float]:
    """One 1-transaction load; with ``profile`` (a list), append its cProfile report."""
    topic = fresh_topic(settings, "loader", PARTITIONS)
    profiler = cProfile.Profile() if profile is not None else None
    started = time.perf_counter()
    if profiler:
        profiler.enable()
    result = load_events(
        settings, topic, config, transactional_id=f"bench-{topic}", progress_every=10**9
    )
    if profiler and profile is not None:
        profiler.disable()
        profile.append(profile_report(profiler))
    wall = time.perf_counter() - started
    assert result.events == config.n_events
    return {
        "events": result.events,
        "elapsed_s": result.elapsed_s,
        "events_per_s": result.events_per_s,
        "wall_s": wall,
    }


def measure_producer_performance(
    settings: KafkaSettings, n_events: int, payload: list[str], props: dict[str, str]
) -> dict[str, float]:
    topic = fresh_topic(settings, "pp", PARTITIONS)
    run = producer_performance(settings, topic, n_events, payload, props)
    ends = Topics(settings).end_offsets(topic)
    # One transaction: records plus one commit marker per partition written.
    assert run["events"] == n_events and sum(ends.values()) >= n_events, ends
    return run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--profile", action="store_true", help="cProfile one extra loader run")
    args = parser.parse_args(argv)
    console = Console()
    config = GeneratorConfig(n_events=args.events, seed=1)
    machine_info = machine()

    # Our records' sizes, from the same generator the loader uses.
    values: list[bytes] = []
    key_bytes = 0
    for batch in CartEventGenerator(config).batches():
        values += batch.values
        key_bytes += sum(map(len, batch.keys))
    keys_mean = key_bytes / len(values)
    value_mean = statistics.fmean(len(v) for v in values)
    record_size = round(value_mean)

    with fresh_broker("loader_bench_", console) as (broker, tmp):
        payload_file = Path(tmp) / "payloads.txt"
        step = max(1, len(values) // PAYLOAD_SAMPLE)
        payload_file.write_bytes(b"\n".join(values[::step]))
        del values
        settings = KafkaSettings(broker.config.bootstrap_servers)
        base = settings.producer_config(transactional_id="bench")
        txn_ms = int(transaction_timeout_for(args.events) * 1000)
        props = {
            "acks": "all",
            "enable.idempotence": "true",
            "linger.ms": str(base["linger.ms"]),
            "batch.size": str(base["batch.size"]),
            "compression.type": base["compression.type"],
            "transaction.timeout.ms": str(txn_ms),
            # librdkafka's default murmur2_random is per key; Java's default for
            # unkeyed records (ProducerPerformance sends none) is the sticky partitioner.
        }
        contenders: dict[str, Callable[[], dict[str, float]]] = {
            "generation only": lambda: measure_generation(config),
            "loader (Python)": lambda: measure_loader(settings, config),
            "ProducerPerformance --record-size": lambda: measure_producer_performance(
                settings, args.events, ["--record-size", str(record_size)], props
            ),
            "ProducerPerformance --payload-file": lambda: measure_producer_performance(
                settings, args.events, ["--payload-file", str(payload_file)], props
            ),
        }
        runs = interleaved(contenders, args.rounds, console)
        profile: list[str] = []
        loader_ratio = median(runs["loader (Python)"]) / max(
            median(runs[name]) for name in runs if "Performance" in name
        )
        if args.profile or loader_ratio < TARGET_RATIO:
            measure_loader(settings, config, profile=profile)
            console.print("[bold]cProfile of one loader run (by tottime):[/bold]")
            console.print(profile[0], markup=False, highlight=False)

    medians = {name: median(r) for name, r in runs.items()}
    loader = medians["loader (Python)"]
    ratios = {
        "loader / ProducerPerformance --record-size": loader
        / medians["ProducerPerformance --record-size"],
        "loader / ProducerPerformance --payload-file": loader
        / medians["ProducerPerformance --payload-file"],
    }

    table = Table(title=f"{args.events:,} events, median of {args.rounds}, {PARTITIONS} partitions")
    table.add_column("contender")
    table.add_column("events/s (median)", justify="right")
    table.add_column("runs (events/s)", justify="right")
    for name, r in runs.items():
        table.add_row(
            name, f"{medians[name]:,.0f}", ", ".join(f"{x['events_per_s']:,.0f}" for x in r)
        )
    console.print(table)
    console.print(
        f"record sizes: value mean {value_mean:.1f} B (ProducerPerformance --record-size "
        f"{record_size}), key mean {keys_mean:.1f} B (ProducerPerformance sends no key)"
    )
    for name, ratio in ratios.items():
        verdict = "ok" if ratio >= TARGET_RATIO else f"BELOW target {TARGET_RATIO}"
        console.print(f"{name}: [bold]{ratio:.2f}[/bold] ({verdict})")
    console.print(f"machine: {machine_info}")

    write_results("loader", {
        "events": args.events,
        "rounds": args.rounds,
        "partitions": PARTITIONS,
        "value_mean_bytes": value_mean,
        "key_mean_bytes": keys_mean,
        "record_size": record_size,
        "producer_props": props,
        "machine": machine_info,
        "runs": runs,
        "medians_events_per_s": medians,
        "ratios": ratios,
        "target_ratio": TARGET_RATIO,
        "profile": profile[0] if profile else None,
    }, console)  # fmt: skip
    return 0 if min(ratios.values()) >= TARGET_RATIO else 1


if __name__ == "__main__":
    raise SystemExit(main())
