"""Where the recomputation's CPU per event goes, and what the consumer's fetch sizes cost.

    .venv/bin/python bench/recompute_breakdown.py --events 2000000

One fresh broker, one 1-partition topic loaded by the loader (1 % malformed). Each variant runs
in a fresh interpreter (so its peak RSS, ``VmHWM``, is its own) and reads the whole topic:

* ``consume only``: the consume() loop and nothing else (the floor: librdkafka's fetch and
  the Message objects);
* ``recompute, per-record loop`` / ``recompute, batch fast path``: ``recompute_partition``;
* the fast path again with smaller fetch sizes (``fetch.max.bytes`` = ``max.partition.fetch.
  bytes`` = N) — what each recompute process holds vs what it reads per CPU-second.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from _common import fresh_broker, machine, run_child
from rich.console import Console

from cart_pipeline.kafka_io import KafkaSettings, Topics
from cart_pipeline.loader import GeneratorConfig
from cart_pipeline.loader.producer import load_events

_CHILD = r"""
import json, sys, time
from confluent_kafka import Consumer, TopicPartition
from cart_pipeline.kafka_io import KafkaSettings
import importlib
rc = importlib.import_module("cart_pipeline.reconcile.recompute")

def hwm():
    with open("/proc/self/status") as f:
        return int(next(l for l in f if l.startswith("VmHWM:")).split()[1]) // 1024

bootstrap, topic, mode = sys.argv[1], sys.argv[2], sys.argv[4]
end, fetch = int(sys.argv[3]), int(sys.argv[5])
settings = KafkaSettings(bootstrap, timeout_s=60)
if fetch:
    original = KafkaSettings.consumer_config
    def capped(self, group_id, **overrides):
        overrides.update({"fetch.max.bytes": fetch, "max.partition.fetch.bytes": fetch})
        return original(self, group_id, **overrides)
    KafkaSettings.consumer_config = capped
cpu, wall = time.process_time(), time.perf_counter()
if mode == "consume":
    c = Consumer(settings.consumer_config("x", **{"fetch.max.bytes": 52_428_800,
                 "max.partition.fetch.bytes": 10_485_760} if not fetch else {}))
    c.assign([TopicPartition(topic, 0, 0)])
    n = pos = 0
    while pos < end:
        batch = c.consume(num_messages=rc.BATCH, timeout=rc.POLL_TIMEOUT_S)
        n += len(batch)
        pos = c.position([TopicPartition(topic, 0)])[0].offset
    c.close()
else:
    n = rc.recompute_partition(settings, topic, 0, end, fast_path=(mode == "fast")).records
cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
print(json.dumps({"events": n, "cpu_s": cpu, "wall_s": wall, "peak_rss_mb": hwm()}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--events", type=int, default=2_000_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--fetch", default="1048576,4194304", help="fetch sizes to try (bytes)")
    args = parser.parse_args()
    console = Console(width=150)
    info = machine()
    variants = [("consume only", "consume", 0), ("recompute, per-record loop", "slow", 0),
                ("recompute, batch fast path", "fast", 0)]  # fmt: skip
    for size in (int(f) for f in args.fetch.split(",")):
        variants.append((f"fast path, fetch {size >> 20} MB", "fast", size))
        variants.append((f"consume only, fetch {size >> 20} MB", "consume", size))
    out: dict[str, list[dict[str, float]]] = {name: [] for name, _, _ in variants}
    with fresh_broker("recompute_breakdown_", console) as (broker, _tmp):
        settings = KafkaSettings(broker.config.bootstrap_servers, timeout_s=60)
        topic = f"bench_breakdown_{int(time.time())}"
        Topics(settings).ensure(topic, 1)
        config = GeneratorConfig(n_events=args.events, seed=1, malformed_share=0.01)
        load_events(settings, topic, config, transactional_id=f"b-{topic}", progress_every=10**9)
        end = Topics(settings).end_offsets(topic)[0]
        for r in range(args.rounds):
            for name, mode, fetch in variants:
                child_args = [settings.bootstrap_servers, topic, str(end), mode, str(fetch)]
                got = run_child(_CHILD, child_args)
                out[name].append(got)
                console.print(
                    f"round {r + 1} {name}: {got['cpu_s'] / got['events'] * 1e6:.2f} µs CPU/event,"
                    f" {got['events'] / got['wall_s']:,.0f} events/s,"
                    f" peak RSS {got['peak_rss_mb']} MB"
                )
    console.print(f"machine: {info}, load at end {machine()['load_avg_at_start']}")
    for name, runs in out.items():
        best = min(x["cpu_s"] / x["events"] * 1e6 for x in runs)
        peak = max(x["peak_rss_mb"] for x in runs)
        console.print(f"{name:36s} best {best:.2f} µs CPU/event; peak RSS {peak} MB")
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    path = Path("bench/results") / f"recompute-breakdown-{stamp}.json"
    path.write_text(json.dumps({"machine": info, "events": args.events, "runs": out}, indent=1))
    console.print(f"results: {path}")


if __name__ == "__main__":
    main()
