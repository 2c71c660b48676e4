"""Reliability scenario 2: the engine is killed (kill -9) mid-stream, again and again.

The pipeline's own objects — the tutorial's stream and CTAS table, from the pipeline's .sql
files, renamed for a private topic — run on a private engine (its own service id and state
dir) over the session broker, with a second CTAS counting the events per cart line. While the
project's loader writes chunk after chunk (one transaction each), the engine is killed at
different moments — while committing under load, right after a restart (restoring state),
mid catch-up after a commit, at a random delay — and restarted on the same state dir and
service id each time. Afterwards the served totals and counts must equal the generator's
truth exactly (nothing lost, nothing counted twice), and the project's reconciliation (the
function the Dagster asset runs) must report a match with no mismatch.

tests/engine/test_durability.py kills an engine once on a hand-written query; this is the
pipeline-level scenario, repeated.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import pytest

from cart_pipeline.kafka_io import KafkaSettings, Topics
from cart_pipeline.ksql import KsqlClient
from cart_pipeline.loader import GeneratorConfig, generate
from cart_pipeline.loader.producer import LoadResult, load_events, transactional_id_for
from cart_pipeline.pipeline.ddl import (
    CURRENT_SHOPPING_CART,
    SHOPPING_CART_EVENTS,
    wait_until_running,
)
from cart_pipeline.reconcile import MATCH, ReconcileSpec, reconcile
from cart_pipeline.reconcile.lag import committed_offsets, query_consumer_group
from tests.engine.conftest import PrivateEngine

PARTITIONS = 3
CHUNKS = 6
CHUNK_EVENTS = 15_000
#: Slow enough that the loads span the kills, so the engine is killed while records arrive.
RATE = 3_000
POOLS = {"n_customers": 60, "n_items": 25}
START_TIMEOUT_S = 240.0

Line = tuple[str, str]


@dataclass
class Loads:
    """The loader's ledger: every acknowledged (committed) chunk, or the error that stopped it."""

    results: list[LoadResult] = field(default_factory=list)
    error: BaseException | None = None
    done: threading.Event = field(default_factory=threading.Event)

    @property
    def events(self) -> int:
        return sum(r.events for r in self.results)


def run_loads(settings: KafkaSettings, topic: str, loads: Loads) -> None:
    try:
        for chunk in range(CHUNKS):
            config = GeneratorConfig(n_events=CHUNK_EVENTS, seed=100 + chunk, **POOLS)
            txn_id = transactional_id_for(topic, config.seed, f"engine-crash-{chunk}")
            loads.results.append(
                load_events(settings, topic, config, transactional_id=txn_id, rate_limit=RATE)
            )
    except BaseException as exc:  # judged by the test thread
        loads.error = exc
    finally:
        loads.done.set()


def truth() -> tuple[dict[Line, int], Counter[Line]]:
    """Per cart line: SUM(qty) and the number of events, from the generator's own records."""
    totals: dict[Line, int] = {}
    counts: Counter[Line] = Counter()
    for chunk in range(CHUNKS):
        run = generate(GeneratorConfig(n_events=CHUNK_EVENTS, seed=100 + chunk, **POOLS))
        for line, total in run.expected_totals.items():
            totals[line] = totals.get(line, 0) + total
        for _, value in run.records:
            event = orjson.loads(value)
            counts[(event["customer"], event["item"])] += 1
    return totals, counts


def pipeline_sql(stream: str, table: str) -> tuple[str, str]:
    """The pipeline's own DDL (its .sql files), renamed: this test owns its topic and table."""

    def rename(sql: str) -> str:
        return sql.replace("current_shopping_cart", table).replace("shopping_cart_events", stream)

    return rename(SHOPPING_CART_EVENTS.sql()), rename(CURRENT_SHOPPING_CART.sql())


def served(url: str, table: str) -> dict[Line, int]:
    with KsqlClient(url, timeout=60) as ksql:
        return {(row[0], row[1]): row[2] for row in ksql.query(f"SELECT * FROM {table};").rows}


def wait_for(check: Callable[[], object], timeout_s: float, what: str, poll_s: float = 0.2) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"{what}: not within {timeout_s}s"
        time.sleep(poll_s)


class Crasher:
    """Kills and restarts the private engine; notes where the query stood at each kill.

    Progress is read from Kafka (the query's consumer group), never from the engine, so it
    is valid however the engine is doing.
    """

    def __init__(self, engine: PrivateEngine, settings: KafkaSettings, topic: str, table: str):
        self.engine, self.settings, self.topic, self.table = engine, settings, topic, table
        self.group = ""
        self.kills: list[str] = []

    def resolve_group(self) -> None:
        with KsqlClient(self.engine.url, timeout=60) as ksql:
            query_id = wait_until_running(ksql, self.table, 120)
            self.group = query_consumer_group(ksql.server_info().ksql_service_id, query_id)

    def committed(self) -> int:
        """Offsets of the topic the table's query has committed (with its results)."""
        partitions = list(range(PARTITIONS))
        return sum(committed_offsets(self.settings, self.group, self.topic, partitions).values())

    def kill(self, moment: str) -> None:
        end = sum(Topics(self.settings).end_offsets(self.topic).values())
        where = f"query committed {self.committed()} of {end} offsets"
        pid = self.engine.pid
        self.engine.kill()
        self.kills.append(f"{moment} ({where}; pid {pid})")

    def restart(self) -> None:
        self.engine.start(START_TIMEOUT_S)
        self.resolve_group()


@pytest.mark.timeout(1500)
def test_engine_killed_mid_stream_repeatedly_counts_exactly_once(
    kafka_bootstrap: str, tmp_path: Path, unique_name: str
) -> None:
    settings = KafkaSettings(kafka_bootstrap, timeout_s=30)
    stream, table = f"{unique_name}_events", f"{unique_name}_cart"
    counts_table = f"{table}_n".upper()
    Topics(settings).ensure(stream, partitions=PARTITIONS)
    engine = PrivateEngine(kafka_bootstrap, tmp_path / "engine")
    crasher = Crasher(engine, settings, stream, table.upper())
    rng = random.Random(7)
    loads = Loads()
    try:
        engine.start(START_TIMEOUT_S)
        stream_sql, table_sql = pipeline_sql(stream, table)
        with KsqlClient(engine.url, timeout=60) as ksql:
            ksql.execute(stream_sql)
            ksql.execute(table_sql)
            # Counts per line, committing on another cadence than the tutorial's table.
            ksql.execute(
                "SET 'auto.offset.reset'='earliest';"
                "SET 'ksql.streams.commit.interval.ms'='700';"
                f"CREATE TABLE {counts_table} WITH (KEY_FORMAT='JSON') AS SELECT customer, "
                f"item, COUNT(*) AS n FROM {stream} GROUP BY customer, item EMIT CHANGES;"
            )
            wait_until_running(ksql, counts_table, 120)
        crasher.resolve_group()

        loader = threading.Thread(
            target=run_loads, args=(settings, stream, loads), name="loads", daemon=True
        )
        loader.start()

        # 1. Under load, once the query has committed some of it.
        wait_for(lambda: crasher.committed() > 0, 300, "the query committing its first events")
        crasher.kill("under load, after the query's first commits")
        # 2. The moment it is back (restoring its state from the changelog).
        crasher.restart()
        crasher.kill("right after restart")
        # 3. Mid catch-up, once it committed again since the restart.
        crasher.restart()
        before = crasher.committed()
        wait_for(lambda: crasher.committed() > before or loads.done.is_set(), 300, "a commit")
        crasher.kill("mid catch-up, after a commit since the restart")
        # 4. At a random delay after the restart.
        crasher.restart()
        delay = rng.uniform(0.3, 4.0)
        time.sleep(delay)
        crasher.kill(f"{delay:.1f}s after restart")
        crasher.restart()

        assert loads.done.wait(900), "the loads did not finish"
        assert loads.error is None, f"a load failed: {loads.error!r}"
        n = CHUNKS * CHUNK_EVENTS
        assert loads.events == n
        expected_totals, expected_counts = truth()
        assert sum(expected_counts.values()) == n

        wait_for(
            lambda: served(engine.url, table) == expected_totals, 600, "served totals", poll_s=2
        )
        counts = served(engine.url, counts_table)
        lost = sum((expected_counts - Counter(counts)).values())
        duplicated = sum((Counter(counts) - expected_counts).values())
        assert (lost, duplicated) == (0, 0), f"lost {lost}, duplicated {duplicated}"
        assert counts == dict(expected_counts)

        with KsqlClient(engine.url, timeout=60) as ksql:
            result = reconcile(
                settings, ksql, ReconcileSpec(topic=stream, table=table.upper(), lag_timeout_s=120)
            )
        summary = result.summary()
        assert result.status == MATCH, summary
        assert result.comparison is not None and not result.comparison.discrepancies
        assert result.comparison.keys_compared == len(expected_totals)
        assert summary["events_read"] == n, summary

        figures = {
            "scenario": f"engine kill -9 x{len(crasher.kills)}",
            "written": loads.events,
            "read by engine (sum of COUNT(*))": sum(counts.values()),
            "lost": lost,
            "duplicated": duplicated,
            "lines": len(expected_totals),
            "reconciliation": f"{result.status}, {len(result.comparison.discrepancies)} "
            f"mismatches of {result.comparison.keys_compared} keys",
        }
        print("\nKILLS:\n  " + "\n  ".join(crasher.kills))
        print("FIGURES " + " | ".join(f"{k}: {v}" for k, v in figures.items()))
        assert len(crasher.kills) >= 3
    finally:
        engine.stop()
        loads.done.wait(120)
