"""Recomputation read throughput vs Kafka's own ConsumerPerformance, on one fresh broker.

    .venv/bin/python bench/recompute_bench.py            # 1M events, 3 rounds
    .venv/bin/python bench/recompute_bench.py --events 200000 --rounds 1 --profile
    .venv/bin/python bench/recompute_bench.py --events 10000000 --prefix 1000000   # 1M and 10M
    .venv/bin/python bench/recompute_bench.py --skip-throughput     # the memory curves only

The same generated events (one loader transaction, so read_committed readers see them only
once committed) go to a 1-partition and a 4-partition topic. Rounds interleave: our
recomputation on 1 partition (in-process, and cut into offset ranges for 2 worker processes),
on 4 partitions with 1 and with 2 worker processes, and
ConsumerPerformance (Java, read_committed, no Python in the loop) on both topics; medians are
reported. ``--prefix N`` also measures every contender on the first N events of the same
topics (recompute up to end offsets scaled to N; ConsumerPerformance ``--messages N``).

Memory: the peak RSS (``VmHWM``) of a fresh subprocess that recomputes (1 worker,
in-process) — along two curves:

* **events**, fixed keys: prefixes of one 1-partition topic over 50 customers x 100 items,
  uniform (all 5,000 keys are hit within the first ~50k events), at ``--memory-events``;
* **keys**, fixed events: ``--memory-keys-events`` events over ``k/100`` customers x 100
  items, uniform, for each k of ``--memory-keys``; the x-axis is the distinct keys found.

Plus, with the throughput runs, the 4-partition topic at the smallest size with 1 and with 2
worker processes: the peak of the sum of the RSS of the parent and its workers (psutil,
sampled every 20 ms).
"""

from __future__ import annotations

import argparse
import cProfile
import importlib
import json
import math
import resource
import time
import uuid
from collections.abc import Callable, Mapping
from functools import partial
from pathlib import Path
from typing import Any

from _common import (
    consumer_performance,
    fresh_broker,
    interleaved,
    machine,
    median,
    profile_report,
    run_child,
    with_tree_sampler,
    write_results,
)
from rich.console import Console
from rich.table import Table

from cart_pipeline.kafka_io import KafkaSettings, Topics
from cart_pipeline.loader import GeneratorConfig
from cart_pipeline.loader.producer import load_events
from cart_pipeline.reconcile.recompute import recompute

TARGET_RATIO = 0.5
#: The module (the package re-exports its function ``recompute`` under the same name).
recompute_module = importlib.import_module("cart_pipeline.reconcile.recompute")

# One recomputation in a fresh interpreter; prints its figures as one JSON line.
# argv: bootstrap, topic, JSON end offsets, workers.
_MEMORY_CHILD = r"""
import json, sys, threading, time
import psutil
from cart_pipeline.kafka_io import KafkaSettings
from cart_pipeline.reconcile.recompute import recompute

def status_kb(field):
    with open("/proc/self/status") as f:
        return int(next(line for line in f if line.startswith(field + ":")).split()[1])

settings = KafkaSettings(sys.argv[1], timeout_s=60)
ends = {int(p): o for p, o in json.loads(sys.argv[3]).items()}
workers = int(sys.argv[4])
cap = int(sys.argv[5])
if cap:  # what-if: smaller consumer fetch buffers than recompute.py asks for
    original = KafkaSettings.consumer_config
    def capped(self, group_id, **overrides):
        overrides.update({"fetch.max.bytes": cap, "max.partition.fetch.bytes": cap,
                          "queued.max.messages.kbytes": max(1, cap // 1024)})
        return original(self, group_id, **overrides)
    KafkaSettings.consumer_config = capped
before = status_kb("VmRSS")
# TREE_SAMPLER
started = time.perf_counter()
r = recompute(settings, sys.argv[2], ends, workers=workers)
elapsed = time.perf_counter() - started
done.set()
sampler.join()
print(json.dumps({
    "events": r.records, "keys": len(r.totals), "workers": workers, "elapsed_s": elapsed,
    "rss_before_kb": before, "rss_after_kb": status_kb("VmRSS"),
    # VmHWM, not ru_maxrss: after fork + exec, ru_maxrss still counts the parent's peak.
    "peak_rss_kb": status_kb("VmHWM"),
    "peak_tree_rss_kb": peak_tree // 1024,
}))
"""
_MEMORY_CHILD = with_tree_sampler(_MEMORY_CHILD)


def load_topic(settings: KafkaSettings, partitions: int, config: GeneratorConfig) -> str:
    topic = f"bench_recompute_{partitions}p_{uuid.uuid4().hex[:8]}"
    Topics(settings).ensure(topic, partitions)
    result = load_events(
        settings, topic, config, transactional_id=f"bench-{topic}", progress_every=10**9
    )
    assert result.events == config.n_events
    return topic


def prefix_ends(ends: Mapping[int, int], n_events: int, total: int) -> dict[int, int]:
    """End offsets covering about the first ``n_events`` of ``total`` (all of them if more)."""
    if n_events >= total:
        return dict(ends)
    return {p: math.ceil(end * n_events / total) for p, end in ends.items()}


def measure_recompute(
    settings: KafkaSettings,
    topic: str,
    workers: int,
    n_events: int,
    total: int,
    profile: list[str] | None = None,
    fast_path: bool = True,
) -> dict[str, float]:
    ends = prefix_ends(Topics(settings).end_offsets(topic), n_events, total)
    profiler = cProfile.Profile() if profile is not None else None
    if profiler:
        profiler.enable()
    cpu = time.process_time()
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    recompute_module.FAST_PATH = fast_path  # in-process only: workers import their own
    try:
        result = recompute(settings, topic, ends, workers=workers)
    finally:
        recompute_module.FAST_PATH = True
    wall = time.perf_counter() - started
    cpu = time.process_time() - cpu
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    # Worker processes (forkserver's children) are not ours to wait for: their CPU is not
    # counted, so events_per_cpu_s is meaningful for in-process (1 worker) reads only.
    cpu += (after.ru_utime - children.ru_utime) + (after.ru_stime - children.ru_stime)
    if profiler and profile is not None:
        profiler.disable()
        profile.append(profile_report(profiler))
    return {
        "events": result.records,
        "keys": len(result.totals),
        "elapsed_s": wall,
        "events_per_s": result.records / wall,
        "cpu_s": cpu,
        "events_per_cpu_s": result.records / cpu if cpu else 0.0,
    }


def measure_memory(
    settings: KafkaSettings, topic: str, ends: Mapping[int, int], workers: int = 1, cap: int = 0
) -> dict[str, float]:
    got = run_child(
        _MEMORY_CHILD,
        [settings.bootstrap_servers, topic, json.dumps(ends), str(workers), str(cap)],
    )
    got["fetch_cap_bytes"] = cap
    got["peak_rss_mb"] = got["peak_rss_kb"] / 1024
    got["peak_tree_rss_mb"] = got["peak_tree_rss_kb"] / 1024
    got["rss_before_mb"] = got["rss_before_kb"] / 1024
    got["peak_growth_mb"] = (got["peak_rss_kb"] - got["rss_before_kb"]) / 1024
    return got


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--rounds-largest", type=int, help="rounds at --events when prefixes are given"
    )
    parser.add_argument(
        "--prefix", type=_ints, default=[], help="also measure the first N events (N,M,...)"
    )
    parser.add_argument("--profile", action="store_true", help="cProfile one extra 1p run")
    parser.add_argument(
        "--memory-events", type=_ints, default=[1_000_000, 2_000_000, 5_000_000, 10_000_000],
        help="event counts of the fixed-keys memory curve",
    )  # fmt: skip
    parser.add_argument(
        "--memory-keys", type=_ints, default=[1_000, 10_000, 100_000, 1_000_000],
        help="key-space sizes of the fixed-events memory curve",
    )  # fmt: skip
    parser.add_argument("--memory-keys-events", type=int, default=2_000_000)
    parser.add_argument(
        "--memory-keys-prefixes", type=_ints, default=[],
        help="also measure each keys-curve topic at these first-N-events prefixes",
    )  # fmt: skip
    parser.add_argument(
        "--fetch-cap-bytes", type=int, default=0,
        help="memory runs only, what-if: cap the consumer's fetch.max.bytes, "
        "max.partition.fetch.bytes and queued.max.messages.kbytes to this (0: recompute.py's)",
    )  # fmt: skip
    parser.add_argument(
        "--one-partition", action="store_true",
        help="only the 1-partition topic: recompute vs ConsumerPerformance (no parallel runs)",
    )  # fmt: skip
    parser.add_argument(
        "--per-record", action="store_true",
        help="also the 1-partition recompute with the batch fast path off (A/B, same rounds)",
    )  # fmt: skip
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--skip-memory", action="store_true")
    args = parser.parse_args(argv)
    console = Console(width=150)
    machine_info = machine()
    config = GeneratorConfig(n_events=args.events, seed=1, malformed_share=0.01)
    sizes = sorted({*args.prefix, args.events})

    runs: dict[int, dict[str, list[dict[str, float]]]] = {}
    profile: list[str] = []
    memory: dict[str, list[dict[str, Any]]] = {"events": [], "keys": [], "parallel": []}
    started_all = time.perf_counter()
    with fresh_broker("recompute_bench_", console) as (broker, tmp):
        cp_config = Path(tmp) / "consumer.properties"
        cp_config.write_text("isolation.level=read_committed\n")
        settings = KafkaSettings(broker.config.bootstrap_servers, timeout_s=60)
        if not args.skip_throughput:
            started = time.perf_counter()
            topic1 = load_topic(settings, 1, config)
            topic4 = load_topic(settings, 4, config) if not args.one_partition else ""
            console.print(f"loaded {args.events:,} events in {time.perf_counter() - started:.0f}s")
            for size in sizes:
                rec = partial(measure_recompute, n_events=size, total=args.events)
                contenders: dict[str, Callable[[], dict[str, float]]] = {
                    "recompute, 1 partition": partial(rec, settings, topic1, 1),
                    "recompute, 1 partition, 2 workers": partial(rec, settings, topic1, 2),
                    "recompute, 4 partitions, 1 worker": partial(rec, settings, topic4, 1),
                    "recompute, 4 partitions, 2 workers": partial(rec, settings, topic4, 2),
                    "ConsumerPerformance, 1 partition": partial(
                        consumer_performance, settings, topic1, size, cp_config
                    ),
                    "ConsumerPerformance, 4 partitions": partial(
                        consumer_performance, settings, topic4, size, cp_config
                    ),
                }
                if args.per_record:
                    contenders["recompute, 1 partition, per-record loop"] = partial(
                        rec, settings, topic1, 1, fast_path=False
                    )
                if args.one_partition:
                    contenders = {n: c for n, c in contenders.items() if "1 partition" in n}
                console.print(f"[bold]{size:,} events[/bold]")
                rounds = args.rounds
                if size == args.events and args.prefix and args.rounds_largest:
                    rounds = args.rounds_largest
                runs[size] = interleaved(contenders, rounds, console)
            for workers in (1, 2) if topic4 else ():
                ends4 = prefix_ends(Topics(settings).end_offsets(topic4), sizes[0], args.events)
                m = measure_memory(settings, topic4, ends4, workers)
                memory["parallel"].append(m)
                console.print(f"memory, 4 partitions, {workers} worker(s): {m}")
            if args.profile:
                measure_recompute(settings, topic1, 1, args.events, args.events, profile)
                console.print("[bold]cProfile of one 1-partition recomputation:[/bold]")
                console.print(profile[0], markup=False, highlight=False)
        if not args.skip_memory:
            fixed = GeneratorConfig(
                n_events=max(args.memory_events, default=0), seed=2, n_customers=50,
                n_items=100, skew=0.0,
            )  # fmt: skip
            started = time.perf_counter()
            topic = load_topic(settings, 1, fixed) if args.memory_events else ""
            console.print(
                f"loaded {fixed.n_events:,} events in {time.perf_counter() - started:.0f}s"
            )
            for n in args.memory_events:
                m = measure_memory(settings, topic, {0: n}, cap=args.fetch_cap_bytes)
                memory["events"].append(m)
                console.print(f"memory, fixed keys: {m}")
            for k in args.memory_keys:
                kconfig = GeneratorConfig(
                    n_events=args.memory_keys_events, seed=3, n_customers=max(1, k // 100),
                    n_items=100, skew=0.0,
                )  # fmt: skip
                topic = load_topic(settings, 1, kconfig)
                for n in [*args.memory_keys_prefixes, 0]:
                    ends = Topics(settings).end_offsets(topic)
                    m = measure_memory(
                        settings, topic, {0: n} if n else ends, cap=args.fetch_cap_bytes
                    )
                    m["key_space"] = k
                    memory["keys"].append(m)
                    console.print(f"memory, key space {k:,}: {m}")
    console.print(f"total {time.perf_counter() - started_all:.0f}s")

    medians = {size: {n: median(r) for n, r in by_name.items()} for size, by_name in runs.items()}
    ratios: dict[int, dict[str, float]] = {}
    for size, med in medians.items():
        if args.one_partition:
            ratios[size] = {}
        else:
            ratios[size] = {
                "4 partitions, 1 worker / ConsumerPerformance": med[
                    "recompute, 4 partitions, 1 worker"
                ]
                / med["ConsumerPerformance, 4 partitions"],
                "4 partitions, 2 workers / ConsumerPerformance": med[
                    "recompute, 4 partitions, 2 workers"
                ]
                / med["ConsumerPerformance, 4 partitions"],
                "4 partitions: 2 workers / 1 worker": med["recompute, 4 partitions, 2 workers"]
                / med["recompute, 4 partitions, 1 worker"],
            }
        cp1 = med["ConsumerPerformance, 1 partition"]
        ratios[size].update({
            "1 partition: recompute / ConsumerPerformance": med["recompute, 1 partition"] / cp1,
            "1 partition, 2 workers (offset ranges) / ConsumerPerformance":
                med["recompute, 1 partition, 2 workers"] / cp1,
            "1 partition: 2 workers / 1 worker":
                med["recompute, 1 partition, 2 workers"] / med["recompute, 1 partition"],
        })  # fmt: skip
        if "recompute, 1 partition, per-record loop" in med:
            ratios[size]["1 partition: batch fast path / per-record loop"] = (
                med["recompute, 1 partition"] / med["recompute, 1 partition, per-record loop"]
            )
        table = Table(title=f"{size:,} events, median of {len(runs[size][next(iter(med))])}")
        table.add_column("contender")
        table.add_column("events/s (median)", justify="right")
        table.add_column("events/CPU-s (median)", justify="right")
        table.add_column("runs (events/s)", justify="right")
        for name, r in runs[size].items():
            per_cpu = median(r, "events_per_cpu_s") if all("cpu_s" in x for x in r) else 0.0
            table.add_row(
                name, f"{med[name]:,.0f}", f"{per_cpu:,.0f}" if "2 workers" not in name else "-",
                ", ".join(f"{x['events_per_s']:,.0f}" for x in r),
            )  # fmt: skip
        console.print(table)
        for name, ratio in ratios[size].items():
            verdict = (
                ""
                if "/ 1 worker" in name or "/ per-record" in name
                else (" (ok)" if ratio >= TARGET_RATIO else f" (BELOW target {TARGET_RATIO})")
            )
            console.print(f"{name}: [bold]{ratio:.2f}[/bold]{verdict}")
    for curve, rows in memory.items():
        if not rows:
            continue
        mem = Table(title=f"peak RSS of a fresh recomputation process: {curve}")
        for col in ("events", "distinct keys", "workers", "RSS before (MB)", "peak RSS (MB)",
                    "peak - before (MB)", "peak, incl. workers (MB)", "s"):  # fmt: skip
            mem.add_column(col, justify="right")
        for m in rows:
            mem.add_row(
                f"{m['events']:,}", f"{m['keys']:,}", str(m["workers"]),
                f"{m['rss_before_mb']:.1f}", f"{m['peak_rss_mb']:.1f}",
                f"{m['peak_growth_mb']:.1f}", f"{m['peak_tree_rss_mb']:.1f}",
                f"{m['elapsed_s']:.1f}",
            )  # fmt: skip
        console.print(mem)
    machine_info["load_avg_at_end"] = machine()["load_avg_at_start"]
    console.print(f"machine: {machine_info}")

    largest = max(runs) if runs else 0
    write_results("recompute", {
        "events": args.events,
        "sizes": sizes,
        "rounds": args.rounds,
        "machine": machine_info,
        # Top level as before (the largest size); per size under "by_size".
        "runs": runs.get(largest, {}),
        "medians_events_per_s": medians.get(largest, {}),
        "ratios": ratios.get(largest, {}),
        "by_size": {
            str(s): {"runs": runs[s], "medians_events_per_s": medians[s], "ratios": ratios[s]}
            for s in runs
        },
        "target_ratio": TARGET_RATIO,
        "memory": memory,
        "profile": profile[0] if profile else None,
    }, console)  # fmt: skip
    if not ratios:
        return 0
    ok = all(
        r["1 partition: recompute / ConsumerPerformance"] >= TARGET_RATIO for r in ratios.values()
    )
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
