"""Incremental reconciliation: a run after 1 % more events, against a full run of the same log.

    .venv/bin/python bench/incremental_bench.py                         # 1M events, 3 rounds
    .venv/bin/python bench/incremental_bench.py --events 200000 --rounds 2   # smoke test

A fresh embedded broker, the engine as a subprocess, the pipeline's own DDL (the tutorial's
stream and CTAS). The topic is loaded with ``--events`` (1 % malformed), the engine catches
up (not timed), and one full reconciliation saves the snapshot. Then, per round: load
``--top-up`` of the events more (default 1 %), wait until the engine has caught up (not
timed), time ``reconcile()`` in mode ``incremental`` (what the Dagster asset runs by default:
reads the new events and the table's changelog since the snapshot, saves the new snapshot),
then time a full ``reconcile()`` of the same log (no snapshot used or saved). The ratio
incremental / full per round is the figure; the target is <= 0.05. Both must match.

Each timed ``reconcile()`` runs in a fresh interpreter (timed inside it: the call alone, not
the imports nor the ksqlDB client's construction, which imports httpcore), as a Dagster run
does: nothing is inherited from the run before — no warm client, no garbage of a full run's
million-object dicts for the collector to walk. ``--in-process`` runs them all
in this process instead (the method of the first runs in BENCHMARKS.md; ``--profile`` needs it).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import pstats
import statistics
import time
from typing import Any

from _common import (
    EngineProcess,
    fresh_broker,
    load_average,
    machine,
    run_child,
    write_results,
)
from reconcile_bench import create_pipeline, wait_caught_up
from rich.console import Console
from rich.table import Table

from cart_pipeline.kafka_io import KafkaSettings
from cart_pipeline.ksql import KsqlClient
from cart_pipeline.loader import GeneratorConfig
from cart_pipeline.loader.producer import load_events
from cart_pipeline.pipeline.ddl import (
    CURRENT_SHOPPING_CART,
    SHOPPING_CART_EVENTS,
)
from cart_pipeline.reconcile import ReconcileSpec, SnapshotPolicy, reconcile

TOPIC = SHOPPING_CART_EVENTS.topic
SNAPSHOT_TOPIC = "_bench_reconcile_snapshot"

# argv: bootstrap, ksqlDB URL, topic, table, policy (JSON object, or null for none).
_CHILD = r"""
import json, sys, time
from cart_pipeline.kafka_io import KafkaSettings
from cart_pipeline.ksql import KsqlClient
from cart_pipeline.reconcile import ReconcileSpec, SnapshotPolicy, reconcile

settings = KafkaSettings(sys.argv[1], timeout_s=60)
spec = ReconcileSpec(topic=sys.argv[3], table=sys.argv[4], lag_timeout_s=600)
policy = json.loads(sys.argv[5])
with KsqlClient(sys.argv[2], timeout=600) as ksql:  # its first use imports httpcore: not timed
    started = time.perf_counter()
    if policy is None:
        result = reconcile(settings, ksql, spec)
    else:
        result = reconcile(settings, ksql, spec, SnapshotPolicy(**policy))
    wall = time.perf_counter() - started
summary = result.summary()
print(json.dumps({
    "wall_s": wall, "status": result.status, "mode": result.mode,
    "events_read": summary.get("events_read"), "keys_compared": summary.get("keys_compared"),
    "snapshot_written": summary.get("snapshot_written"), "timings": result.timings,
}))
"""


def _child_reconcile(
    settings: KafkaSettings, url: str, spec: ReconcileSpec, policy: SnapshotPolicy | None
) -> dict[str, Any]:
    """One reconcile() in a fresh interpreter (the bench's default)."""
    as_json = None if policy is None else {"mode": policy.mode, "topic": policy.topic}
    got = run_child(
        _CHILD, [settings.bootstrap_servers, url, spec.topic, spec.table, json.dumps(as_json)]
    )
    got["load_avg"] = load_average()
    return got


def _timed_reconcile(
    settings: KafkaSettings,
    url: str,
    spec: ReconcileSpec,
    policy: SnapshotPolicy | None,
    profile: bool = False,
) -> dict[str, Any]:
    profiler = cProfile.Profile() if profile else None
    started = time.perf_counter()
    with KsqlClient(url, timeout=600) as ksql:
        if profiler:
            profiler.enable()
        result = (
            reconcile(settings, ksql, spec)
            if policy is None
            else reconcile(settings, ksql, spec, policy)
        )
        if profiler:
            profiler.disable()
    summary = result.summary()
    if profiler:
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(45)
        print(out.getvalue())
    return {
        "wall_s": time.perf_counter() - started,
        "status": result.status,
        "mode": getattr(result, "mode", "full"),
        "events_read": summary.get("events_read"),
        "keys_compared": summary.get("keys_compared"),
        "timings": dict(result.timings),
        "load_avg": load_average(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--top-up", type=float, default=0.01, help="share of --events per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--partitions", type=int, default=1)
    parser.add_argument("--catch-up-timeout", type=float, default=1800.0)
    parser.add_argument(
        "--in-process", action="store_true", help="every reconcile() in this process"
    )
    parser.add_argument(
        "--profile", action="store_true",
        help="cProfile the last round's incremental run (implies --in-process)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    console = Console(width=150)
    info = machine()
    rounds: list[dict[str, Any]] = []
    seed_run: dict[str, Any] = {}
    spec = ReconcileSpec(topic=TOPIC, table=CURRENT_SHOPPING_CART.name, lag_timeout_s=600)
    incremental = SnapshotPolicy(mode="incremental", topic=SNAPSHOT_TOPIC)
    with fresh_broker("incremental_bench_", console) as (broker, tmp):
        settings = KafkaSettings(broker.config.bootstrap_servers, timeout_s=60)
        engine = EngineProcess(broker.config.bootstrap_servers, tmp / "engine")
        try:
            group = create_pipeline(settings, engine.url, args.partitions)

            def load(n: int, seed: int) -> None:
                load_events(
                    settings, TOPIC, GeneratorConfig(n_events=n, seed=seed, malformed_share=0.01),
                    transactional_id=f"bench-incremental-{seed}", progress_every=10**9,
                )  # fmt: skip
                wait_caught_up(settings, group, args.catch_up_timeout, console)

            load(args.events, 1)
            seed_run = _timed_reconcile(
                settings, engine.url, spec, SnapshotPolicy(mode="full", topic=SNAPSHOT_TOPIC)
            )
            console.print(f"seed (full + save): {seed_run['status']} in {seed_run['wall_s']:.2f}s")
            step = max(1, int(args.events * args.top_up))
            for n in range(1, args.rounds + 1):
                load(step, 100 + n)
                if args.in_process or args.profile:
                    profile = args.profile and n == args.rounds
                    inc = _timed_reconcile(settings, engine.url, spec, incremental, profile)
                    full = _timed_reconcile(settings, engine.url, spec, None)
                else:
                    inc = _child_reconcile(settings, engine.url, spec, incremental)
                    full = _child_reconcile(settings, engine.url, spec, None)
                ratio = inc["wall_s"] / full["wall_s"]
                rounds.append({"top_up": step, "incremental": inc, "full": full, "ratio": ratio})
                console.print(
                    f"round {n}: +{step:,} events; incremental {inc['status']} ({inc['mode']}) "
                    f"{inc['wall_s']:.2f}s reading {inc['events_read']:,}; full {full['status']} "
                    f"{full['wall_s']:.2f}s reading {full['events_read']:,}; ratio {ratio:.3f}"
                )
        finally:
            engine.stop()

    table = Table(title=f"incremental vs full reconciliation, {args.events:,} events + 1 %/round")
    for col in ("round", "incremental s", "full s", "ratio", "inc. phases (s)"):
        table.add_column(col, justify="right" if col != "inc. phases (s)" else "left")
    for i, r in enumerate(rounds, 1):
        phases = ", ".join(f"{k} {v:.2f}" for k, v in r["incremental"]["timings"].items())
        table.add_row(
            str(i), f"{r['incremental']['wall_s']:.2f}", f"{r['full']['wall_s']:.2f}",
            f"{r['ratio']:.3f}", phases,
        )  # fmt: skip
    console.print(table)
    median = statistics.median(r["ratio"] for r in rounds) if rounds else float("nan")
    console.print(f"median ratio incremental / full: {median:.3f} (target <= 0.05)")
    write_results(
        "incremental",
        {"machine": info, "args": vars(args), "seed": seed_run, "rounds": rounds,
         "method": "in-process" if args.in_process or args.profile else "fresh process each",
         "median_ratio": median},
        console,
    )  # fmt: skip
    ok = all(
        r["incremental"]["status"] == "match"
        and r["incremental"]["mode"] == "incremental"
        and r["full"]["status"] == "match"
        for r in rounds
    )
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
