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
import io
import json
import os
import platform
import pstats
import re
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

import confluent_kafka
from rich.console import Console
from rich.table import Table

from cart_pipeline.embedded import KafkaBroker, KafkaConfig
from cart_pipeline.embedded import process as proc
from cart_pipeline.embedded.runtime import KAFKA_VERSION, find_java, resolve_runtime
from cart_pipeline.kafka_io import KafkaSettings, Topics
from cart_pipeline.loader import CartEventGenerator, GeneratorConfig
from cart_pipeline.loader.producer import load_events, transaction_timeout_for

RESULTS = Path(__file__).resolve().parent / "results"
PARTITIONS = 6
TARGET_RATIO = 0.5
PAYLOAD_SAMPLE = 100_000
_PP_TOTAL = re.compile(r"^(\d+) records sent, ([\d.]+) records/sec \(([\d.]+) MB/sec\)", re.M)


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
    topic = _fresh_topic(settings, "loader")
    profiler = cProfile.Profile() if profile is not None else None
    started = time.perf_counter()
    if profiler:
        profiler.enable()
    result = load_events(
        settings, topic, config, transactional_id=f"bench-{topic}", progress_every=10**9
    )
    if profiler and profile is not None:
        profiler.disable()
        profile.append(_profile_report(profiler))
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
    topic = _fresh_topic(settings, "pp")
    java = find_java().executable
    cmd = [
        java, "-Xmx1g", "-cp", f"{resolve_runtime()}/*",
        "org.apache.kafka.tools.ProducerPerformance",
        "--topic", topic, "--num-records", str(n_events), "--throughput", "-1",
        *payload,
        "--transactional-id", f"bench-{topic}", "--transaction-duration-ms", "3600000",
        "--producer-props", f"bootstrap.servers={settings.bootstrap_servers}",
        *(f"{k}={v}" for k, v in props.items()),
    ]  # fmt: skip
    started = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
    wall = time.perf_counter() - started
    totals = _PP_TOTAL.findall(done.stdout)
    if done.returncode != 0 or not totals:
        raise RuntimeError(
            f"ProducerPerformance failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}"
        )
    records, rate, mb = totals[-1]
    ends = Topics(settings).end_offsets(topic)
    # One transaction: records plus one commit marker per partition written.
    assert int(records) == n_events and sum(ends.values()) >= n_events, ends
    return {
        "events": int(records),
        "events_per_s": float(rate),
        "mb_per_s": float(mb),
        "elapsed_s": int(records) / float(rate),
        "wall_s": wall,
    }


def _fresh_topic(settings: KafkaSettings, prefix: str) -> str:
    topic = f"bench_{prefix}_{uuid.uuid4().hex[:8]}"
    Topics(settings).ensure(topic, PARTITIONS)
    return topic


def _profile_report(profiler: cProfile.Profile) -> str:
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(12)
    return out.getvalue()


def _median(runs: list[dict[str, float]], key: str) -> float:
    return statistics.median(run[key] for run in runs)


def _machine() -> dict[str, object]:
    model = ""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        found = re.search(r"model name\s*:\s*(.+)", cpuinfo.read_text())
        model = found[1].strip() if found else ""
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "load_avg_at_start": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "confluent_kafka": metadata.version("confluent-kafka"),
        "librdkafka": confluent_kafka.libversion()[0],
        "java": find_java().major_version,
        "kafka": KAFKA_VERSION,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--profile", action="store_true", help="cProfile one extra loader run")
    args = parser.parse_args(argv)
    console = Console()
    config = GeneratorConfig(n_events=args.events, seed=1)
    machine = _machine()

    # Our records' sizes, from the same generator the loader uses.
    values: list[bytes] = []
    key_bytes = 0
    for batch in CartEventGenerator(config).batches():
        values += batch.values
        key_bytes += sum(map(len, batch.keys))
    keys_mean = key_bytes / len(values)
    value_mean = statistics.fmean(len(v) for v in values)
    record_size = round(value_mean)

    with tempfile.TemporaryDirectory(prefix="loader_bench_") as tmp:
        payload_file = Path(tmp) / "payloads.txt"
        step = max(1, len(values) // PAYLOAD_SAMPLE)
        payload_file.write_bytes(b"\n".join(values[::step]))
        del values
        broker = KafkaBroker(KafkaConfig(
            data_dir=Path(tmp) / "kafka", port=proc.free_port(), controller_port=proc.free_port(),
            heap="1g",
        ))  # fmt: skip
        console.print(f"starting a fresh broker in {tmp} ...")
        broker.start()
        try:
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
            runs: dict[str, list[dict[str, float]]] = {name: [] for name in contenders}
            for round_no in range(1, args.rounds + 1):
                for name, run in contenders.items():
                    outcome = run()
                    runs[name].append(outcome)
                    console.print(
                        f"round {round_no}: {name}: {outcome['events_per_s']:,.0f} events/s"
                    )
            profile: list[str] = []
            loader_ratio = _median(runs["loader (Python)"], "events_per_s") / max(
                _median(runs[name], "events_per_s") for name in runs if "Performance" in name
            )
            if args.profile or loader_ratio < TARGET_RATIO:
                measure_loader(settings, config, profile=profile)
                console.print("[bold]cProfile of one loader run (by tottime):[/bold]")
                console.print(profile[0], markup=False, highlight=False)
        finally:
            broker.stop()

    medians = {name: _median(r, "events_per_s") for name, r in runs.items()}
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
    console.print(f"machine: {machine}")

    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = RESULTS / f"loader-{stamp}.json"
    out.write_text(json.dumps({
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "events": args.events,
        "rounds": args.rounds,
        "partitions": PARTITIONS,
        "value_mean_bytes": value_mean,
        "key_mean_bytes": keys_mean,
        "record_size": record_size,
        "producer_props": props,
        "machine": machine,
        "runs": runs,
        "medians_events_per_s": medians,
        "ratios": ratios,
        "target_ratio": TARGET_RATIO,
        "profile": profile[0] if profile else None,
    }, indent=2))  # fmt: skip
    console.print(f"results: {out}")
    return 0 if min(ratios.values()) >= TARGET_RATIO else 1


if __name__ == "__main__":
    raise SystemExit(main())
