"""Reconciliation end to end: ``cart_pipeline.reconcile.reconcile`` against a caught-up engine.

    .venv/bin/python bench/reconcile_bench.py                       # 1M and 10M events (~25 min)
    .venv/bin/python bench/reconcile_bench.py --sizes 1000000 --rounds 3     # 1M only (~5 min)

Everything is real: a fresh embedded broker, the engine as a subprocess, the pipeline's own
DDL (``shopping_cart_events`` stream and the tutorial's CTAS, from ``pipeline/sql``), the
topic filled by the loader (default generator, 1 % malformed records). For each size in
``--sizes`` the topic is topped up to that many events, the bench waits until the CTAS's
committed offsets reach the topic's end (lag 0, not timed: the engine's own benchmark covers
catch-up), and then times ``reconcile()`` — the function the Dagster asset calls, a *full*
reconciliation (default policy: no snapshot) — ``--rounds`` times, each in a fresh
subprocess so that its peak RSS (``VmHWM``) is its own.

Phases: ``reconcile()``'s own ``timings`` plus, measured by wrapping the functions
``run.py`` calls (whichever exist): the end-offset snapshots, ``recompute``, the lag check,
``served_totals`` (the pull query over the whole table) and ``compare``.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

from _common import (
    EngineProcess,
    consumer_performance,
    fresh_broker,
    load_average,
    machine,
    results_path,
    run_child,
    with_tree_sampler,
    write_results,
)
from rich.console import Console
from rich.table import Table

from cart_pipeline.kafka_io import KafkaSettings, Topics
from cart_pipeline.ksql import KsqlClient
from cart_pipeline.loader import GeneratorConfig
from cart_pipeline.loader.producer import load_events
from cart_pipeline.pipeline.ddl import (
    CURRENT_SHOPPING_CART,
    SHOPPING_CART_EVENTS,
    apply_source,
    wait_until_running,
)
from cart_pipeline.reconcile.lag import committed_offsets, query_consumer_group

TOPIC = SHOPPING_CART_EVENTS.topic
ROOT = Path(__file__).resolve().parent.parent

# argv: bootstrap, ksqlDB URL, topic, table. Prints one JSON line.
_CHILD = r"""
import functools, json, sys, threading, time
import psutil
from cart_pipeline.kafka_io import KafkaSettings
from cart_pipeline.ksql import KsqlClient
import cart_pipeline.reconcile.run as run

def status_kb(field):
    with open("/proc/self/status") as f:
        return int(next(line for line in f if line.startswith(field + ":")).split()[1])

phases = {}
def timed(name, fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        started = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            entry = phases.setdefault(name, [0.0, 0])
            entry[0] += time.perf_counter() - started
            entry[1] += 1
    return wrapper

for name in ("recompute", "wait_for_offsets", "served_totals", "compare", "read_changelog",
             "table_query_id"):
    if callable(getattr(run, name, None)):
        setattr(run, name, timed(name, getattr(run, name)))
for owner, method, label in (
    (getattr(run, "LogReader", None), "state", "end offsets (LogReader.state)"),
    (getattr(run, "Topics", None), "end_offsets", "end offsets (Topics)"),
):
    if owner is not None and callable(getattr(owner, method, None)):
        setattr(owner, method, timed(label, getattr(owner, method)))

# TREE_SAMPLER

settings = KafkaSettings(sys.argv[1], timeout_s=60)
spec = run.ReconcileSpec(topic=sys.argv[3], table=sys.argv[4])
before = status_kb("VmRSS")
started = time.perf_counter()
with KsqlClient(sys.argv[2], timeout=600) as ksql:
    result = run.reconcile(settings, ksql, spec)
wall = time.perf_counter() - started
done.set()
print(json.dumps({
    "wall_s": wall, "status": result.status, "summary": result.summary(),
    "timings": result.timings,
    "phases": {k: {"s": v[0], "calls": v[1]} for k, v in phases.items()},
    "rss_before_kb": before, "peak_rss_kb": status_kb("VmHWM"),
    "peak_tree_rss_kb": peak_tree // 1024,
}, default=str))
"""
_CHILD = with_tree_sampler(_CHILD)


def create_pipeline(settings: KafkaSettings, ksql_url: str, partitions: int) -> str:
    """The topic, the pipeline's own stream and CTAS; returns the CTAS query's consumer group."""
    Topics(settings).ensure(TOPIC, partitions)
    with KsqlClient(ksql_url, timeout=120) as ksql:
        apply_source(ksql, SHOPPING_CART_EVENTS)
        apply_source(ksql, CURRENT_SHOPPING_CART)
        query_id = wait_until_running(ksql, CURRENT_SHOPPING_CART.name, 120)
        return query_consumer_group(ksql.server_info().ksql_service_id, query_id)


def wait_caught_up(
    settings: KafkaSettings, group: str, timeout_s: float, console: Console
) -> dict[str, float]:
    """Until the query's committed offsets reach the last record of every partition."""
    ends = Topics(settings).end_offsets(TOPIC)
    # One load = one transaction: its commit marker is the last offset of each partition
    # written; the query's committed offset may stop just before it.
    targets = {p: max(0, end - 1) for p, end in ends.items()}
    started = time.monotonic()
    last_print = started
    while True:
        got = committed_offsets(settings, group, TOPIC, sorted(targets))
        lag = sum(max(0, t - got.get(p, 0)) for p, t in targets.items())
        now = time.monotonic()
        if lag == 0:
            return {"catch_up_s": now - started, "end_offsets": sum(ends.values())}
        if now - last_print > 30:
            console.print(f"  engine lag {lag:,} after {now - started:.0f}s")
            last_print = now
        if now - started > timeout_s:
            raise RuntimeError(f"engine still {lag:,} behind after {timeout_s:.0f}s")
        time.sleep(1.0)


def report(
    results: dict[str, dict[str, Any]],
    args: argparse.Namespace,
    sizes: list[int],
    machine_info: dict[str, object],
    reconcile_diff: list[str],
    console: Console,
    out: Path,
    complete: bool,
) -> None:
    """The table so far, and the JSON (rewritten after each size, so a cut run keeps it)."""
    table = Table(title="reconcile(), full, against a caught-up engine (median of rounds)")
    for col in ("events", "keys", "status", "wall s", "events/s", "peak RSS MB",
                "snapshot s", "recompute s", "lag check s", "pull query s", "compare s", "other s",
                "runs (wall s)"):  # fmt: skip
        table.add_column(col, justify="right")
    summary: dict[str, Any] = {}
    for size, res in results.items():
        runs = res["runs"]
        ordered = sorted(runs, key=lambda x: x["wall_s"])
        mid = ordered[(len(ordered) - 1) // 2]  # the median run (lower median for 2 rounds)

        def phase(run: dict[str, Any], *names: str) -> float:
            return sum(run["phases"].get(n, {}).get("s", 0.0) for n in names)

        snap = ("end offsets (LogReader.state)", "end offsets (Topics)")
        row = {
            "wall_s": mid["wall_s"],
            "events_per_s": mid["summary"].get("events_read", 0) / mid["wall_s"],
            "peak_rss_mb": max(x["peak_rss_kb"] for x in runs) / 1024,
            "snapshot_s": phase(mid, *snap),
            "recompute_s": phase(mid, "recompute"),
            "lag_check_s": phase(mid, "wait_for_offsets"),
            "pull_query_s": phase(mid, "served_totals"),
            "compare_s": phase(mid, "compare"),
        }
        row["other_s"] = mid["wall_s"] - sum(v["s"] for v in mid["phases"].values())
        recompute_rates = [
            x["summary"].get("events_read", 0) / x["phases"]["recompute"]["s"]
            for x in runs
            if x["phases"].get("recompute", {}).get("s")
        ]
        if recompute_rates:
            row["recompute_events_per_s"] = statistics.median(recompute_rates)
        if "consumer_performance" in res:
            row["consumer_performance_events_per_s"] = res["consumer_performance"]["events_per_s"]
            if recompute_rates:
                row["recompute_over_consumer_performance"] = (
                    row["recompute_events_per_s"] / row["consumer_performance_events_per_s"]
                )
            console.print(
                f"{size}: recompute phase {row.get('recompute_events_per_s', 0):,.0f} events/s, "
                f"ConsumerPerformance {row['consumer_performance_events_per_s']:,.0f} events/s"
            )
        summary[size] = row
        table.add_row(
            f"{int(size):,}", f"{mid['summary'].get('served_keys', 0):,}",
            "/".join(sorted({x["status"] for x in runs})),
            f"{row['wall_s']:.1f}", f"{row['events_per_s']:,.0f}", f"{row['peak_rss_mb']:.0f}",
            f"{row['snapshot_s']:.2f}", f"{row['recompute_s']:.1f}", f"{row['lag_check_s']:.2f}",
            f"{row['pull_query_s']:.2f}", f"{row['compare_s']:.2f}", f"{row['other_s']:.2f}",
            ", ".join(f"{x['wall_s']:.1f}" for x in runs),
        )  # fmt: skip
    console.print(table)
    machine_info["load_avg_at_end"] = load_average()
    console.print(f"machine: {machine_info}")
    write_results("reconcile", {
        "complete": complete, "sizes": sizes,
        "rounds": args.rounds, "rounds_largest": args.rounds_largest,
        "partitions": args.partitions, "machine": machine_info,
        "reconcile_worktree_changes": [line for line in reconcile_diff if line],
        "catch_up_note": "catch_up_s: from the start of the load until the query's lag is 0",
        "results": results, "summary": summary,
    }, console, out)  # fmt: skip


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--sizes", type=_ints, default=[1_000_000, 10_000_000])
    parser.add_argument("--rounds", type=int, default=3, help="reconciliations per size")
    parser.add_argument(
        "--rounds-largest", type=int, default=2, help="reconciliations at the largest size"
    )
    parser.add_argument("--partitions", type=int, default=1, help="of shopping_cart_events")
    parser.add_argument("--catch-up-timeout", type=float, default=1800.0)
    parser.add_argument(
        "--consumer-performance", action="store_true",
        help="after the reconciliations, ConsumerPerformance on the same topic (read_committed)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    console = Console(width=150)
    machine_info = machine()
    out = results_path("reconcile")
    diff = subprocess.run(
        ["git", "status", "--short", "cart_pipeline/reconcile"],
        cwd=ROOT, capture_output=True, text=True, check=False,
    ).stdout.split("\n")  # fmt: skip
    sizes = sorted(args.sizes)
    results: dict[str, dict[str, Any]] = {}
    started_all = time.perf_counter()
    with fresh_broker("reconcile_bench_", console) as (broker, tmp):
        settings = KafkaSettings(broker.config.bootstrap_servers, timeout_s=60)
        engine = EngineProcess(broker.config.bootstrap_servers, tmp / "engine")
        try:
            group = create_pipeline(settings, engine.url, args.partitions)
            loaded = 0
            for size in sizes:
                step = size - loaded
                t = time.perf_counter()
                load = load_events(
                    settings, TOPIC,
                    GeneratorConfig(n_events=step, seed=len(results) + 1, malformed_share=0.01),
                    transactional_id=f"bench-reconcile-{size}", progress_every=10**9,
                )  # fmt: skip
                loaded += load.events
                load_s = time.perf_counter() - t
                console.print(f"{size:,}: loaded {step:,} more events in {load_s:.0f}s")
                caught = wait_caught_up(settings, group, args.catch_up_timeout, console)
                caught["catch_up_s"] += load_s  # the engine was consuming during the load
                console.print(
                    f"{size:,}: engine caught up {caught['catch_up_s']:.0f}s after the load "
                    f"began, engine RSS {engine.rss_mb():.0f} MB"
                )
                rounds = (
                    args.rounds_largest if size == sizes[-1] and len(sizes) > 1 else args.rounds
                )
                runs = []
                for r in range(1, rounds + 1):
                    got = run_child(
                        _CHILD, [settings.bootstrap_servers, engine.url, TOPIC,
                                 CURRENT_SHOPPING_CART.name],
                    )  # fmt: skip
                    got["load_avg"] = load_average()
                    runs.append(got)
                    s = got["summary"]
                    console.print(
                        f"{size:,} round {r}: {got['status']} in {got['wall_s']:.1f}s, "
                        f"{s.get('events_read', 0):,} events, {s.get('served_keys', 0):,} keys, "
                        f"peak RSS {got['peak_rss_kb'] / 1024:.0f} MB, phases "
                        + ", ".join(f"{k} {v['s']:.2f}s" for k, v in got["phases"].items())
                    )
                results[str(size)] = {
                    "events": size, "load_s": load_s, **caught,
                    "engine_rss_mb": engine.rss_mb(), "runs": runs,
                }  # fmt: skip
                if args.consumer_performance:
                    cp_config = tmp / "consumer.properties"
                    cp_config.write_text("isolation.level=read_committed\n")
                    cp = consumer_performance(settings, TOPIC, size, cp_config)
                    results[str(size)]["consumer_performance"] = cp
                    console.print(
                        f"{size:,}: ConsumerPerformance {cp['events_per_s']:,.0f} events/s"
                    )
                report(results, args, sizes, machine_info, diff, console, out, False)
        finally:
            engine.stop()
    console.print(f"total {time.perf_counter() - started_all:.0f}s")
    report(results, args, sizes, machine_info, diff, console, out, True)

    ok = all(x["status"] == "match" for res in results.values() for x in res["runs"])
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
