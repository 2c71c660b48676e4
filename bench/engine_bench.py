"""Throughput, latency and memory of the embedded engine running the tutorial's CTAS.

    .venv/bin/python bench/engine_bench.py            # full run (~4 min on 2 cores)
    .venv/bin/python bench/engine_bench.py --quick    # 10x fewer events, smoke test
    .venv/bin/python bench/engine_bench.py --profile  # one 1M run under cProfile only

Everything is real: a Kafka broker (``cart_pipeline.embedded``) and the engine as a
subprocess, both started here in a temporary directory and stopped at the end.

* throughput: preload N events (idempotent producer), then CREATE the CTAS with
  ``auto.offset.reset=earliest`` (exactly-once, default 2 s commit interval) and time
  until the query's *committed* offsets reach the topic's read_committed end. Committed
  means processed, written to sink + changelog and visible to pull queries.
* latency: 1,000 events/s in the background with a 100 ms commit interval; probe
  events with a unique key are produced one at a time and a pull query polls for each
  until it is visible: produce -> visible p50/p99.
* memory: engine RSS (psutil) after 100k vs 1M events over the same keys, and 1M events
  over 10x the keys; a fresh engine per scenario so RSS is not carried over.

Results: a table on stdout and JSON in ``bench/results/`` (gitignored).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import pstats
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import confluent_kafka
import httpx
import orjson
import psutil
from confluent_kafka import ConsumerGroupTopicPartitions, IsolationLevel, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic, OffsetSpec
from rich.console import Console
from rich.table import Table

from cart_pipeline.embedded import KafkaBroker, KafkaConfig
from cart_pipeline.embedded import process as proc
from cart_pipeline.loader.config import GeneratorConfig
from cart_pipeline.loader.generator import CartEventGenerator

RESULTS = Path(__file__).parent / "results"
PARTITIONS = 2
CTAS = (
    "CREATE TABLE {table} WITH (KEY_FORMAT='JSON') AS SELECT customer, item, "
    "SUM(qty) as total_qty FROM {stream} GROUP BY customer, item EMIT CHANGES;"
)
console = Console(width=150)


# --- services -----------------------------------------------------------------------------


class Engine:
    """The engine subprocess (as tests/conftest.py's EngineProcess) plus a small client."""

    def __init__(self, bootstrap: str, state_dir: Path, profile_dir: Path | None) -> None:
        self.port = proc.free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        state_dir.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        env.update({
            "CART_KSQL_BOOTSTRAP_SERVERS": bootstrap,
            "CART_KSQL_HOST": "127.0.0.1",
            "CART_KSQL_PORT": str(self.port),
            "CART_KSQL_STATE_DIR": str(state_dir),
            "CART_KSQL_SERVICE_ID": f"bench{time.time_ns() % 10**8}_",
        })  # fmt: skip
        if profile_dir is not None:
            env["CART_KSQL_PROFILE_DIR"] = str(profile_dir)
        self.log = state_dir / "engine.log"
        self.pid = proc.spawn([sys.executable, "-m", "cart_pipeline.engine"], self.log, env)
        self.http = httpx.Client(base_url=self.url, timeout=60)
        deadline = time.monotonic() + 90
        while True:
            if not proc.is_alive(self.pid):
                raise RuntimeError(f"engine exited:\n{proc.tail(self.log)}")
            try:
                if self.http.get("/healthcheck", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"engine not ready:\n{proc.tail(self.log)}")
            time.sleep(0.2)

    def ksql(self, sql: str, props: dict[str, str] | None = None) -> Any:
        r = self.http.post("/ksql", json={"ksql": sql, "streamsProperties": props or {}})
        r.raise_for_status()
        return r.json()

    def pull(self, sql: str) -> list[list[Any]]:
        r = self.http.post("/query-stream", json={"sql": sql, "properties": {}})
        r.raise_for_status()
        return [orjson.loads(line) for line in r.text.splitlines()[1:] if line.strip()]

    def rss_mb(self) -> float:
        return psutil.Process(self.pid).memory_info().rss / 2**20

    def stop(self) -> None:
        self.http.close()
        proc.stop(self.pid, "cart_pipeline.engine")


def fast_producer(bootstrap: str) -> Producer:
    return Producer({
        "bootstrap.servers": bootstrap,
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 20,
        "batch.size": 1_000_000,
        "queue.buffering.max.messages": 1_000_000,
        "partitioner": "murmur2_random",
    })  # fmt: skip


def produce(producer: Producer, topic: str, key: bytes, value: bytes) -> None:
    while True:
        try:
            producer.produce(topic, value, key)
            return
        except BufferError:
            producer.poll(0.05)


def stable_ends(admin: AdminClient, topic: str) -> dict[int, int]:
    futures = admin.list_offsets(
        {TopicPartition(topic, p): OffsetSpec.latest() for p in range(PARTITIONS)},
        isolation_level=IsolationLevel.READ_COMMITTED,
        request_timeout=30,
    )
    return {tp.partition: f.result(timeout=30).offset for tp, f in futures.items()}


def committed(admin: AdminClient, group: str, topic: str) -> dict[int, int]:
    futures = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)])
    result = futures[group].result(timeout=30)
    return {tp.partition: tp.offset for tp in result.topic_partitions if tp.topic == topic}


def create_topic(admin: AdminClient, topic: str) -> None:
    admin.create_topics([NewTopic(topic, PARTITIONS, 1)])[topic].result(timeout=30)


# --- scenarios ----------------------------------------------------------------------------


@dataclass
class Throughput:
    name: str
    events: int
    keys: int
    preload_s: float
    total_s: float  # CTAS accepted -> all input committed (includes query start-up)
    sustained_s: float  # first commit -> last commit
    events_per_s: float  # sustained: events committed after the first commit / sustained_s
    end_to_end_events_per_s: float
    rss_idle_mb: float
    rss_peak_mb: float
    rss_final_mb: float
    engine_cpu_s: float  # engine process CPU (user + sys) from CTAS to caught up
    cpu_us_per_event: float
    broker_cpu_s: float
    correct: bool
    samples: list[tuple[float, int]] = field(default_factory=list)


def cpu_s(pid: int | None) -> float:
    t = psutil.Process(pid).cpu_times()
    return t.user + t.system + t.children_user + t.children_system


def throughput(
    broker: KafkaBroker, work: Path, name: str, n: int, customers: int, items: int, profile: bool
) -> Throughput:
    bootstrap = broker.config.bootstrap_servers
    admin = AdminClient({"bootstrap.servers": bootstrap})
    topic = f"bench_{name}_{time.time_ns() % 10**8}"
    create_topic(admin, topic)
    # uniform popularity (skew 0): every (customer, item) line is hit, so the key count is
    # the same at 100k and 1M events and memory can be compared between them
    gen = CartEventGenerator(
        GeneratorConfig(n_events=n, seed=7, n_customers=customers, n_items=items, skew=0.0)
    )
    t = time.monotonic()
    producer = fast_producer(bootstrap)
    for batch in gen.batches():
        for key, value in zip(batch.keys, batch.values, strict=True):
            produce(producer, topic, key, value)
        producer.poll(0)
    assert producer.flush(120) == 0
    preload_s = time.monotonic() - t
    expected = gen.expected_totals()
    ends = stable_ends(admin, topic)
    assert sum(ends.values()) == n, ends

    profile_dir = work / f"profile-{name}" if profile else None
    engine = Engine(bootstrap, work / f"engine-{name}", profile_dir)
    try:
        rss_idle = engine.rss_mb()
        stream, table = f"{topic}_events", f"{topic}_cart"
        engine.ksql(
            f"CREATE STREAM {stream} (customer VARCHAR, item VARCHAR, qty INT) "
            f"WITH (kafka_topic='{topic}', value_format='json');"
        )
        t0 = time.monotonic()
        cpu0, broker_cpu0 = cpu_s(engine.pid), cpu_s(broker.pid)
        (ctas,) = engine.ksql(
            CTAS.format(table=table, stream=stream), {"auto.offset.reset": "earliest"}
        )
        query_id = ctas["commandStatus"]["queryId"]
        (desc,) = engine.ksql(f"DESCRIBE {table} EXTENDED;")
        group = desc["sourceDescription"]["queryOffsetSummaries"][0]["groupId"]
        samples: list[tuple[float, int]] = []
        peak = rss_idle
        while True:
            done = committed(admin, group, topic)
            samples.append((time.monotonic() - t0, sum(max(o, 0) for o in done.values())))
            peak = max(peak, engine.rss_mb())
            if done == ends:
                engine_cpu, broker_cpu = cpu_s(engine.pid) - cpu0, cpu_s(broker.pid) - broker_cpu0
                break
            if time.monotonic() - t0 > 1800:
                raise TimeoutError(f"{query_id} did not catch up: {done} vs {ends}")
            time.sleep(0.1)
        total_s = samples[-1][0]
        first = next(s for s in samples if s[1] > 0)
        sustained_s = total_s - first[0]
        rows = engine.pull(f"SELECT * FROM {table};")
        got = {(c, i): q for c, i, q in rows}
        rss_final = engine.rss_mb()
    finally:
        engine.stop()
    return Throughput(
        name=name,
        events=n,
        keys=len(expected),
        preload_s=round(preload_s, 2),
        total_s=round(total_s, 2),
        sustained_s=round(sustained_s, 2),
        events_per_s=round((n - first[1]) / sustained_s) if sustained_s > 0 else 0,
        end_to_end_events_per_s=round(n / total_s),
        rss_idle_mb=round(rss_idle, 1),
        rss_peak_mb=round(max(peak, rss_final), 1),
        rss_final_mb=round(rss_final, 1),
        engine_cpu_s=round(engine_cpu, 2),
        cpu_us_per_event=round(engine_cpu / n * 1e6, 1),
        broker_cpu_s=round(broker_cpu, 2),
        correct=got == expected,
        samples=[(round(a, 2), b) for a, b in samples],
    )


@dataclass
class Latency:
    rate: int
    commit_interval_ms: int
    duration_s: float
    background_events: int
    probes: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float


def latency(bootstrap: str, work: Path, duration_s: float, rate: int = 1000) -> Latency:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    topic = f"bench_latency_{time.time_ns() % 10**8}"
    create_topic(admin, topic)
    engine = Engine(bootstrap, work / "engine-latency", None)
    producer = Producer({
        "bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all",
        "linger.ms": 5, "partitioner": "murmur2_random",
    })  # fmt: skip
    stop = threading.Event()
    sent = [0]

    def background() -> None:
        """`rate` events/s from the generator, released every 10 ms on a fixed schedule."""
        gen = CartEventGenerator(
            GeneratorConfig(
                n_events=int(rate * (duration_s + 60)), seed=3, n_customers=20, n_items=10
            )
        )
        records = (kv for batch in gen.batches() for kv in batch)
        start = time.monotonic()
        while not stop.is_set():
            due = int((time.monotonic() - start) * rate)
            while sent[0] < due:
                key, value = next(records)
                produce(producer, topic, key, value)
                sent[0] += 1
            producer.poll(0)
            time.sleep(0.01)

    try:
        stream, table = f"{topic}_events", f"{topic}_cart"
        engine.ksql(
            f"CREATE STREAM {stream} (customer VARCHAR, item VARCHAR, qty INT) "
            f"WITH (kafka_topic='{topic}', value_format='json');"
        )
        engine.ksql(
            CTAS.format(table=table, stream=stream),
            {"auto.offset.reset": "earliest", "ksql.streams.commit.interval.ms": "100"},
        )
        thread = threading.Thread(target=background, daemon=True)
        thread.start()
        lat: list[float] = []
        i = 0
        t_end = time.monotonic() + duration_s + 5
        while time.monotonic() < t_end:
            i += 1
            customer = f"probe-{i}"
            value = orjson.dumps({"customer": customer, "item": "probe", "qty": 1})
            sql = f"SELECT total_qty FROM {table} WHERE customer = '{customer}';"
            t = time.perf_counter()
            produce(producer, topic, customer.encode(), value)
            while not engine.pull(sql):
                if time.perf_counter() - t > 30:
                    raise TimeoutError(f"probe {i} not visible in 30 s")
                time.sleep(0.002)
            if i > 5:  # the first probes also wait for the query to start
                lat.append((time.perf_counter() - t) * 1000)
            time.sleep(0.02)
        stop.set()
        thread.join()
        producer.flush(30)
    finally:
        stop.set()
        engine.stop()
    lat.sort()

    def pct(q: float) -> float:
        return round(lat[min(len(lat) - 1, int(q * len(lat)))], 1)

    return Latency(
        rate=rate,
        commit_interval_ms=100,
        duration_s=duration_s,
        background_events=sent[0],
        probes=len(lat),
        p50_ms=pct(0.50),
        p90_ms=pct(0.90),
        p99_ms=pct(0.99),
        max_ms=round(lat[-1], 1),
    )


# --- report -------------------------------------------------------------------------------


def start_broker(work: Path, attempts: int = 3) -> KafkaBroker:
    """A fresh broker; retried because a free port can be taken between probe and bind."""
    for attempt in range(1, attempts + 1):
        data_dir = work / f"kafka-{attempt}"
        broker = KafkaBroker(
            KafkaConfig(data_dir=data_dir, port=proc.free_port(), controller_port=proc.free_port())
        )
        try:
            return broker.start()
        except Exception as exc:
            console.print(
                f"broker start failed ({exc}); log tail:\n{proc.tail(data_dir / 'broker.log')}"
            )
            broker.stop()
            if attempt == attempts:
                raise
    raise AssertionError("unreachable")


def machine() -> dict[str, Any]:
    model = ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "os": platform.platform(),
        "python": platform.python_version(),
        "confluent_kafka": confluent_kafka.__version__,
        "librdkafka": confluent_kafka.libversion()[0],
        # other work on the machine shares the cores: wall-clock figures depend on it,
        # engine CPU per event does not
        "load_average_1m_at_start": round(os.getloadavg()[0], 2),
    }


def profile_summary(prof_dir: Path, top: int = 25) -> list[str]:
    files = sorted(prof_dir.glob("*.prof"))
    if not files:
        return []
    stats = pstats.Stats(str(files[0]))
    stats.sort_stats("tottime")
    width = stats.total_tt  # type: ignore[attr-defined]
    lines = [f"total {width:.2f} s profiled (cProfile, query thread only)"]
    entries = sorted(
        stats.stats.items(),  # type: ignore[attr-defined]
        key=lambda kv: kv[1][2],
        reverse=True,
    )
    for (file, line, func), (_cc, nc, tt, ct, _callers) in entries[:top]:
        where = f"{Path(file).name}:{line}({func})" if line else func
        lines.append(f"{tt:7.2f} {ct:7.2f} {nc:>9} {where}")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--latency-s", type=float, default=30.0)
    ap.add_argument("--quick", action="store_true", help="10x fewer events, 10 s latency")
    ap.add_argument("--profile", action="store_true", help="only a profiled throughput run")
    args = ap.parse_args()
    n = args.events // 10 if args.quick else args.events
    latency_s = 10.0 if args.quick else args.latency_s
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    with tempfile.TemporaryDirectory(prefix="engine-bench-") as tmp:
        work = Path(tmp)
        broker = start_broker(work)
        bootstrap = broker.config.bootstrap_servers
        try:
            report: dict[str, Any] = {"machine": machine(), "events": n}
            if args.profile:
                run = throughput(broker, work, "profiled", n, 100, 50, profile=True)
                prof = RESULTS / f"engine-{stamp}.prof"
                files = sorted((work / "profile-profiled").glob("*.prof"))
                prof.write_bytes(files[0].read_bytes())
                lines = profile_summary(work / "profile-profiled")
                report.update(profiled=asdict(run), profile_top=lines, profile_file=str(prof))
                console.print(f"profiled run: {run.events_per_s:,} events/s (under cProfile)")
                console.print("  tottime cumtime     calls  function")
                for line in lines:
                    console.print("  " + line, markup=False)
            else:
                runs = [
                    throughput(broker, work, "small", n // 10, 100, 50, profile=False),
                    throughput(broker, work, "base", n, 100, 50, profile=False),
                    throughput(broker, work, "keys10x", n, 1000, 50, profile=False),
                ]
                lat = latency(bootstrap, work, latency_s)
                report.update(throughput=[asdict(r) for r in runs], latency=asdict(lat))
                print_tables(runs, lat)
        finally:
            broker.stop()
    report["load_average_1m_at_end"] = round(os.getloadavg()[0], 2)
    out = RESULTS / f"engine-{stamp}.json"
    out.write_text(json.dumps(report, indent=2))
    console.print(f"results: {out}")


def print_tables(runs: list[Throughput], lat: Latency) -> None:
    t = Table(title="CTAS throughput (exactly-once, commit interval 2 s, 2 partitions)")
    for col in (
        "run", "events", "keys", "sustained ev/s", "end-to-end ev/s", "total s",
        "RSS idle MB", "RSS final MB", "growth MB", "engine CPU us/ev", "correct",
    ):  # fmt: skip
        t.add_column(col, justify="right")
    for r in runs:
        t.add_row(
            r.name, f"{r.events:,}", f"{r.keys:,}", f"{r.events_per_s:,}",
            f"{r.end_to_end_events_per_s:,}", f"{r.total_s}", f"{r.rss_idle_mb}",
            f"{r.rss_final_mb}", f"{r.rss_final_mb - r.rss_idle_mb:.1f}",
            f"{r.cpu_us_per_event}", str(r.correct),
        )  # fmt: skip
    console.print(t)
    lt = Table(title=f"produce -> visible in pull query ({lat.rate:,} ev/s, commit 100 ms)")
    for col in ("probes", "background events", "p50 ms", "p90 ms", "p99 ms", "max ms"):
        lt.add_column(col, justify="right")
    lt.add_row(
        str(lat.probes), f"{lat.background_events:,}", str(lat.p50_ms), str(lat.p90_ms),
        str(lat.p99_ms), str(lat.max_ms),
    )  # fmt: skip
    console.print(lt)


if __name__ == "__main__":
    main()
