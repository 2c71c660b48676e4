"""Recomputation read throughput vs Kafka's own ConsumerPerformance, on one fresh broker.

    .venv/bin/python bench/recompute_bench.py            # 1M events, 3 rounds
    .venv/bin/python bench/recompute_bench.py --events 200000 --rounds 1 --profile

The same generated events (one loader transaction, so read_committed readers see them only
once committed) go to a 1-partition and a 4-partition topic. Rounds interleave: our
recomputation on 1 partition, on 4 partitions with 1 and with 2 worker processes, and
ConsumerPerformance (Java, read_committed, no Python in the loop) on both topics; medians are
reported. Peak memory is the RSS high-water mark of a fresh subprocess recomputing topics
with few and with many distinct (customer, item) keys, at two event counts.
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
from cart_pipeline.loader import GeneratorConfig
from cart_pipeline.loader.producer import load_events
from cart_pipeline.reconcile.recompute import recompute

RESULTS = Path(__file__).resolve().parent / "results"
TARGET_RATIO = 0.5
# ConsumerPerformance's CSV line; fetch.nMsg.sec excludes group join / rebalance time.
_CP_LINE = re.compile(
    r"^[^,]+, [^,]+, ([\d.]+), ([\d.]+), (\d+), ([\d.]+), (-?\d+), (\d+), ([\d.]+), ([\d.]+)$",
    re.M,
)

_MEMORY_CHILD = r"""
import json, sys, tracemalloc
from cart_pipeline.kafka_io import KafkaSettings, Topics
from cart_pipeline.reconcile.recompute import recompute

def rss_kb():
    with open("/proc/self/status") as f:
        return int(next(line for line in f if line.startswith("VmRSS:")).split()[1])

settings = KafkaSettings(sys.argv[1])
ends = Topics(settings).end_offsets(sys.argv[2])
before = rss_kb()
if sys.argv[3] == "tracemalloc":
    tracemalloc.start()
r = recompute(settings, sys.argv[2], ends, workers=1)
peak = tracemalloc.get_traced_memory()[1] if tracemalloc.is_tracing() else 0
print(json.dumps({"events": r.records, "keys": len(r.totals), "rss_before_kb": before,
                  "rss_after_kb": rss_kb(), "python_peak_kb": peak // 1024}))
"""


def load_topic(settings: KafkaSettings, partitions: int, config: GeneratorConfig) -> str:
    topic = f"bench_recompute_{partitions}p_{uuid.uuid4().hex[:8]}"
    Topics(settings).ensure(topic, partitions)
    result = load_events(
        settings, topic, config, transactional_id=f"bench-{topic}", progress_every=10**9
    )
    assert result.events == config.n_events
    return topic


def measure_recompute(
    settings: KafkaSettings, topic: str, workers: int, profile: list[str] | None = None
) -> dict[str, float]:
    ends = Topics(settings).end_offsets(topic)
    profiler = cProfile.Profile() if profile is not None else None
    if profiler:
        profiler.enable()
    started = time.perf_counter()
    result = recompute(settings, topic, ends, workers=workers)
    wall = time.perf_counter() - started
    if profiler and profile is not None:
        profiler.disable()
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(12)
        profile.append(out.getvalue())
    return {
        "events": result.records,
        "keys": len(result.totals),
        "elapsed_s": wall,
        "events_per_s": result.records / wall,
    }


def measure_consumer_performance(
    settings: KafkaSettings, topic: str, n_events: int, config_file: Path
) -> dict[str, float]:
    java = find_java().executable
    cmd = [
        java, "-Xmx1g", "-cp", f"{resolve_runtime()}/*",
        "org.apache.kafka.tools.ConsumerPerformance",
        "--bootstrap-server", settings.bootstrap_servers, "--topic", topic,
        "--messages", str(n_events), "--consumer.config", str(config_file),
        "--group", f"bench-cp-{uuid.uuid4().hex[:8]}", "--timeout", "60000",
    ]  # fmt: skip
    started = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
    wall = time.perf_counter() - started
    found = _CP_LINE.findall(done.stdout)
    if done.returncode != 0 or not found:
        raise RuntimeError(
            f"ConsumerPerformance failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}"
        )
    mb, _mb_s, n, n_s, rebalance_ms, fetch_ms, _fetch_mb_s, fetch_n_s = found[-1]
    assert int(n) >= n_events, (n, n_events)
    return {
        "events": int(n),
        "events_per_s": float(fetch_n_s),  # excludes group join, like our assign()
        "events_per_s_incl_join": float(n_s),
        "rebalance_ms": float(rebalance_ms),
        "fetch_ms": float(fetch_ms),
        "mb": float(mb),
        "jvm_wall_s": wall,
    }


def measure_memory(settings: KafkaSettings, topic: str) -> dict[str, float]:
    """RSS growth over a recomputation (untraced run), Python heap peak (tracemalloc run)."""
    out: dict[str, float] = {}
    for mode in ("rss", "tracemalloc"):
        done = subprocess.run(
            [sys.executable, "-c", _MEMORY_CHILD, settings.bootstrap_servers, topic, mode],
            capture_output=True, text=True, timeout=600, check=True,
        )  # fmt: skip
        got = json.loads(done.stdout.strip().splitlines()[-1])
        if mode == "rss":
            out.update(got)
            out["rss_growth_mb"] = (got["rss_after_kb"] - got["rss_before_kb"]) / 1024
        else:
            out["python_peak_mb"] = got["python_peak_kb"] / 1024
    return out


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
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--memory-events", type=int, default=400_000)
    parser.add_argument("--profile", action="store_true", help="cProfile one extra 1p run")
    args = parser.parse_args(argv)
    console = Console()
    machine = _machine()
    config = GeneratorConfig(n_events=args.events, seed=1, malformed_share=0.01)

    # Memory: same key space at two event counts, and ~40x the keys at the larger count.
    def keyspace(n_events: int, seed: int, customers: int) -> GeneratorConfig:
        return GeneratorConfig(
            n_events=n_events, seed=seed, n_customers=customers, n_items=100, skew=0.0
        )

    memory_configs = {
        f"few keys, {args.memory_events // 4:,} events": keyspace(args.memory_events // 4, 2, 50),
        f"few keys, {args.memory_events:,} events": keyspace(args.memory_events, 3, 50),
        f"many keys, {args.memory_events:,} events": keyspace(args.memory_events, 4, 4_000),
    }

    with tempfile.TemporaryDirectory(prefix="recompute_bench_") as tmp:
        cp_config = Path(tmp) / "consumer.properties"
        cp_config.write_text("isolation.level=read_committed\n")
        broker = KafkaBroker(KafkaConfig(
            data_dir=Path(tmp) / "kafka", port=proc.free_port(), controller_port=proc.free_port(),
            heap="1g",
        ))  # fmt: skip
        console.print(f"starting a fresh broker in {tmp} ...")
        broker.start()
        try:
            settings = KafkaSettings(broker.config.bootstrap_servers, timeout_s=60)
            started = time.perf_counter()
            topic1 = load_topic(settings, 1, config)
            topic4 = load_topic(settings, 4, config)
            console.print(
                f"loaded 2 x {args.events:,} events in {time.perf_counter() - started:.0f}s"
            )
            contenders: dict[str, Callable[[], dict[str, float]]] = {
                "recompute, 1 partition": lambda: measure_recompute(settings, topic1, 1),
                "recompute, 4 partitions, 1 worker": lambda: measure_recompute(settings, topic4, 1),
                "recompute, 4 partitions, 2 workers": lambda: measure_recompute(
                    settings, topic4, 2
                ),
                "ConsumerPerformance, 1 partition": lambda: measure_consumer_performance(
                    settings, topic1, args.events, cp_config
                ),
                "ConsumerPerformance, 4 partitions": lambda: measure_consumer_performance(
                    settings, topic4, args.events, cp_config
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
            if args.profile:
                measure_recompute(settings, topic1, 1, profile=profile)
                console.print("[bold]cProfile of one 1-partition recomputation:[/bold]")
                console.print(profile[0], markup=False, highlight=False)
            memory: dict[str, dict[str, float]] = {}
            for name, mconfig in memory_configs.items():
                topic = load_topic(settings, 1, mconfig)
                memory[name] = measure_memory(settings, topic)
                console.print(f"memory: {name}: {memory[name]}")
        finally:
            broker.stop()

    medians = {n: statistics.median(r["events_per_s"] for r in rs) for n, rs in runs.items()}
    ratios = {
        "1 partition: recompute / ConsumerPerformance": medians["recompute, 1 partition"]
        / medians["ConsumerPerformance, 1 partition"],
        "4 partitions, 1 worker / ConsumerPerformance": medians["recompute, 4 partitions, 1 worker"]
        / medians["ConsumerPerformance, 4 partitions"],
        "4 partitions, 2 workers / ConsumerPerformance": medians[
            "recompute, 4 partitions, 2 workers"
        ]
        / medians["ConsumerPerformance, 4 partitions"],
        "4 partitions: 2 workers / 1 worker": medians["recompute, 4 partitions, 2 workers"]
        / medians["recompute, 4 partitions, 1 worker"],
    }
    table = Table(title=f"{args.events:,} events, median of {args.rounds}")
    table.add_column("contender")
    table.add_column("events/s (median)", justify="right")
    table.add_column("runs (events/s)", justify="right")
    for name, r in runs.items():
        table.add_row(
            name, f"{medians[name]:,.0f}", ", ".join(f"{x['events_per_s']:,.0f}" for x in r)
        )
    console.print(table)
    for name, ratio in ratios.items():
        verdict = (
            ""
            if "/ 1 worker" in name
            else (" (ok)" if ratio >= TARGET_RATIO else f" (BELOW target {TARGET_RATIO})")
        )
        console.print(f"{name}: [bold]{ratio:.2f}[/bold]{verdict}")
    mem = Table(title="memory of a fresh recomputation process (1 partition, 1 worker)")
    for col in ("topic", "events", "distinct keys", "RSS growth (MB)", "Python heap peak (MB)"):
        mem.add_column(col, justify="right")
    for name, m in memory.items():
        mem.add_row(name, f"{m['events']:,}", f"{m['keys']:,}", f"{m['rss_growth_mb']:.1f}",
                    f"{m['python_peak_mb']:.1f}")  # fmt: skip
    console.print(mem)
    console.print(f"machine: {machine}")

    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = RESULTS / f"recompute-{stamp}.json"
    out.write_text(json.dumps({
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "events": args.events,
        "rounds": args.rounds,
        "machine": machine,
        "runs": runs,
        "medians_events_per_s": medians,
        "ratios": ratios,
        "target_ratio": TARGET_RATIO,
        "memory": memory,
        "profile": profile[0] if profile else None,
    }, indent=2))  # fmt: skip
    console.print(f"results: {out}")
    return 0 if ratios["1 partition: recompute / ConsumerPerformance"] >= TARGET_RATIO else 1


if __name__ == "__main__":
    raise SystemExit(main())
