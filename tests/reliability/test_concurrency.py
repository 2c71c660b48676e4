"""Issue #7, scenario 7: loads at the same time, and a load during reconciliations.

Real broker, real engine, real transactions. Why it matters: the scheduled job and a manual
"Materialize" can overlap, and the reconciliation runs while events still arrive. Nothing may
be lost or doubled, and an overlap must read as *stale* (or in-flight keys set aside), never
as a false *mismatch* that pages someone.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import dagster as dg
import pytest

from cart_pipeline.kafka_io import KafkaSettings, Topics
from cart_pipeline.ksql import KsqlClient
from cart_pipeline.loader import GeneratorConfig, generate
from cart_pipeline.loader.producer import LoadProgress, LoadResult, load_events
from cart_pipeline.loader.producer import transactional_id_for as txn_id
from cart_pipeline.pipeline import (
    ASSETS,
    AlertWebhookResource,
    KafkaResource,
    KsqlDBResource,
)
from cart_pipeline.reconcile import MATCH, MISMATCH, STALE, ReconcileSpec, reconcile
from cart_pipeline.reconcile.lag import query_consumer_group, wait_for_offsets
from cart_pipeline.reconcile.run import table_query_id
from tests.loader.replay import fold, well_formed_events
from tests.pipeline.conftest import reset_pipeline_objects
from tests.topic_reader import read_topic

pytestmark = pytest.mark.timeout(600)

Totals = dict[tuple[str, str], int]
SMALL = {"n_customers": 120, "n_items": 40}
PARTITIONS = 3


def combined(*totals: Totals) -> Totals:
    out: Totals = {}
    for t in totals:
        for key, qty in t.items():
            out[key] = out.get(key, 0) + qty
    return out


class Cart:
    """One test's own topic, stream and table: the pipeline's SQL, unique names, 3 partitions."""

    def __init__(self, settings: KafkaSettings, ksqldb_url: str, name: str) -> None:
        self.settings, self.topic = settings, f"{name}_events"
        self.stream, self.table = f"{name}_EVENTS".upper(), f"{name}_CART".upper()
        self.ksql = KsqlClient(ksqldb_url, timeout=60)
        self.ksql.execute(
            "SET 'auto.offset.reset'='earliest';\n"
            "SET 'ksql.streams.commit.interval.ms'='1000';\n"
            f"CREATE STREAM {self.stream} (customer VARCHAR, item VARCHAR, qty INT) "
            f"WITH (kafka_topic='{self.topic}', value_format='json', partitions={PARTITIONS});\n"
            f"CREATE TABLE {self.table} WITH (KEY_FORMAT='JSON') AS SELECT customer, item, "
            f"SUM(qty) AS total_qty FROM {self.stream} GROUP BY customer, item EMIT CHANGES;"
        )
        self.spec = ReconcileSpec(topic=self.topic, table=self.table, lag_timeout_s=120)

    def load(self, config: GeneratorConfig, run_id: str, **kwargs: Any) -> LoadResult:
        return load_events(
            self.settings,
            self.topic,
            config,
            transactional_id=txn_id(self.topic, config.seed, run_id),
            **kwargs,
        )

    def reconcile(self, lag_timeout_s: float) -> Any:
        spec = ReconcileSpec(topic=self.topic, table=self.table, lag_timeout_s=lag_timeout_s)
        return reconcile(self.settings, self.ksql, spec)

    def wait_caught_up(self, timeout_s: float = 180) -> None:
        """Lag 0: the table's query has committed every record now in the topic."""
        query_id = table_query_id(self.ksql, self.table)
        assert query_id, f"no query maintains {self.table}"
        group = query_consumer_group(self.ksql.server_info().ksql_service_id, query_id)
        ends = Topics(self.settings).end_offsets(self.topic)
        # The last offset of each partition is a transaction marker: one past the last record.
        targets = {p: max(0, end - 1) for p, end in ends.items()}
        lag = wait_for_offsets(self.settings, group, self.topic, targets, timeout_s)
        assert lag.caught_up, f"engine lag still {lag.total_lag} after {timeout_s}s"

    def served(self) -> Totals:
        rows = self.ksql.query(f"SELECT CUSTOMER, ITEM, TOTAL_QTY FROM {self.table};").rows
        return {(r[0], r[1]): r[2] for r in rows}

    def wait_served(self, truth: Totals, timeout_s: float = 120) -> Totals:
        """The engine's totals once they equal ``truth`` (or the last seen, after the bound)."""
        deadline = time.monotonic() + timeout_s
        while True:
            served = self.served()
            if served == truth or time.monotonic() > deadline:
                return served
            time.sleep(1)

    def close(self) -> None:
        for statement in (
            f"DROP TABLE IF EXISTS {self.table} DELETE TOPIC;",
            f"DROP STREAM IF EXISTS {self.stream};",
        ):
            self.ksql.execute(statement)
        self.ksql.close()
        Topics(self.settings).delete(self.topic)


@pytest.fixture
def cart(kafka_bootstrap: str, ksqldb_url: str, unique_name: str) -> Iterator[Cart]:
    c = Cart(KafkaSettings(kafka_bootstrap, timeout_s=30), ksqldb_url, unique_name)
    try:
        yield c
    finally:
        c.close()


def meet(barrier: threading.Barrier) -> Callable[[LoadProgress], None]:
    """A progress hook that holds a load at its first report until the other load reaches
    its own: both transactions are then open at once, whatever the scheduling."""
    first = [True]

    def hook(_: LoadProgress) -> None:
        if first[0]:
            first[0] = False
            barrier.wait(timeout=120)

    return hook


def test_two_concurrent_loads_lose_and_double_nothing(cart: Cart) -> None:
    configs = [
        GeneratorConfig(n_events=n, seed=s, **SMALL) for n, s in ((24_000, 71), (18_000, 72))
    ]
    run_ids = [uuid.uuid4().hex, uuid.uuid4().hex]
    ids = {txn_id(cart.topic, c.seed, r) for c, r in zip(configs, run_ids, strict=True)}
    assert len(ids) == 2, "two loads must never share a transactional id (they would fence)"
    # Even the same seed in two runs (Dagster: same config, two runs) gets distinct ids.
    assert txn_id(cart.topic, 71, run_ids[0]) != txn_id(cart.topic, 71, run_ids[1])

    barrier = threading.Barrier(2)
    with ThreadPoolExecutor(2) as pool:
        futures = [
            pool.submit(cart.load, c, r, progress=meet(barrier), progress_every=4_000)
            for c, r in zip(configs, run_ids, strict=True)
        ]
        results = [f.result(timeout=300) for f in futures]
    assert {r.transactional_id for r in results} == ids

    written = sum(r.events for r in results)
    records = read_topic(cart.settings.bootstrap_servers, cart.topic, timeout_s=60)
    expected = Counter(rec for c in configs for rec in generate(c).records)
    got = Counter(records)
    lost, doubled = expected - got, got - expected
    print(
        f"\ntwo loads: written={written} read={len(records)} "
        f"lost={sum(lost.values())} duplicated={sum(doubled.values())}"
    )
    assert written == sum(c.n_events for c in configs) == len(records)
    assert not lost and not doubled

    truth = combined(*(r.expected_totals() for r in results))
    assert fold(well_formed_events(records)) == truth

    cart.wait_caught_up()
    assert cart.wait_served(truth) == truth
    result = cart.reconcile(lag_timeout_s=120)
    assert result.status == MATCH, result.summary()
    assert result.recomputation.records == written


def test_reconciling_during_a_load_is_never_a_false_mismatch(cart: Cart) -> None:
    base = cart.load(GeneratorConfig(n_events=6_000, seed=80, **SMALL), "base")
    cart.wait_caught_up()
    assert cart.reconcile(lag_timeout_s=120).status == MATCH

    # Several committed transactions, rate limited so they span the reconciliations below:
    # snapshots land between commits, and commits land between a snapshot and its pull query.
    configs = [GeneratorConfig(n_events=3_000, seed=81 + i, **SMALL) for i in range(6)]
    loads: list[LoadResult] = []
    done = threading.Event()

    def loader() -> None:
        try:
            for i, c in enumerate(configs):
                loads.append(cart.load(c, f"during-{i}", rate_limit=2_000))
        finally:
            done.set()

    statuses: list[str] = []
    in_flight: list[int] = []
    with ThreadPoolExecutor(1) as pool:
        background: Future[None] = pool.submit(loader)
        # At least three reconciliations, all of them while the load runs (bounded loop).
        while (not done.is_set() or len(statuses) < 3) and len(statuses) < 40:
            result = cart.reconcile(lag_timeout_s=3)
            statuses.append(result.status)
            if result.comparison is not None:
                in_flight.append(result.comparison.excluded_in_flight)
            assert result.status != MISMATCH, (
                statuses,
                result.summary(),
                result.comparison and result.comparison.worst(5),
            )
        background.result(timeout=300)
    print(
        f"\nreconciliations during the load: {Counter(statuses)}; "
        f"in-flight keys set aside per comparison: {in_flight}"
    )
    assert set(statuses) <= {MATCH, STALE}

    written = base.events + sum(r.events for r in loads)
    cart.wait_caught_up()
    final = cart.reconcile(lag_timeout_s=120)
    assert final.status == MATCH, final.summary()
    assert (
        final.recomputation.records
        == written
        == len(read_topic(cart.settings.bootstrap_servers, cart.topic, timeout_s=60))
    )
    truth = combined(base.expected_totals(), *(r.expected_totals() for r in loads))
    assert cart.served() == truth


# -- (c) the same through Dagster: the pipeline's own assets, concurrent runs ---------------

LOAD, RECONCILE = "cart_events_load", "cart_reconciliation"


def _materialize(resources: dict, selection: list[str], config: dict) -> dg.ExecuteInJobResult:
    with dg.DagsterInstance.ephemeral() as instance:
        return dg.materialize(
            ASSETS,
            resources=resources,
            instance=instance,
            selection=selection,
            run_config={"ops": config},
            raise_on_error=False,
        )


def _status(result: dg.ExecuteInJobResult) -> str:
    """The reconciliation's status, or the run's failure (which is never acceptable)."""
    if not result.success:
        failure = result.get_step_failure_events()[0].step_failure_data
        return f"run failed: {failure.user_failure_data or failure.error}"
    return str(result.asset_materializations_for_node(RECONCILE)[-1].metadata["status"].value)


def _errors(result: dg.ExecuteInJobResult) -> list[str]:
    """Check evaluations that failed with ERROR severity (a stale WARN is allowed)."""
    return [
        f"{e.check_name}: {e.description}"
        for e in result.get_asset_check_evaluations()
        if not e.passed and e.severity == dg.AssetCheckSeverity.ERROR
    ]


@pytest.mark.slow
def test_concurrent_dagster_runs_load_and_reconcile(kafka_bootstrap: str, ksqldb_url: str) -> None:
    """Two load runs (same seed: only the run id tells them apart) and reconciliation runs,
    all at once through ``dg.materialize``: both loads commit, no check fails with ERROR."""
    reset_pipeline_objects(kafka_bootstrap, ksqldb_url)
    resources = {
        "kafka": KafkaResource(bootstrap_servers=kafka_bootstrap, timeout_s=30),
        "ksqldb": KsqlDBResource(url=ksqldb_url, timeout_s=60),
        "alerts": AlertWebhookResource(url=None),
    }
    load = {"events": 4_000, "seed": 5, "customers": 60, "items": 25}
    setup = _materialize(
        resources,
        [a.key.to_user_string() for a in ASSETS],
        {LOAD: {"config": load}, RECONCILE: {"config": {"lag_timeout_s": 120}}},
    )
    assert _status(setup) == MATCH and not _errors(setup)

    slow_load = {LOAD: {"config": {**load, "events": 6_000, "rate_limit": 1_500}}}
    quick = {RECONCILE: {"config": {"lag_timeout_s": 3}}}
    with ThreadPoolExecutor(3) as pool:
        loads = [pool.submit(_materialize, resources, [LOAD], slow_load) for _ in range(2)]
        reconciliations: list[dg.ExecuteInJobResult] = []
        while not all(f.done() for f in loads) and len(reconciliations) < 20:
            reconciliations.append(_materialize(resources, [RECONCILE], quick))
        load_results = [f.result(timeout=300) for f in loads]
    assert all(r.success for r in load_results)
    statuses = [_status(r) for r in reconciliations]
    print(f"\ndagster reconciliations during two load runs: {Counter(statuses)}")
    assert set(statuses) <= {MATCH, STALE}, statuses
    assert not [e for r in reconciliations for e in _errors(r)]

    final = _materialize(resources, [RECONCILE], {RECONCILE: {"config": {"lag_timeout_s": 120}}})
    assert _status(final) == MATCH and not _errors(final)
    # Both runs' loads committed (no fencing between them), once each.
    settings = KafkaSettings(kafka_bootstrap, timeout_s=30)
    assert (
        len(read_topic(settings.bootstrap_servers, "shopping_cart_events", timeout_s=60))
        == 4_000 + 2 * 6_000
    )
    small = {"seed": 5, "n_customers": 60, "n_items": 25}
    truth = combined(
        *(
            generate(GeneratorConfig(n_events=n, **small)).expected_totals
            for n in (4_000, 6_000, 6_000)
        )
    )
    with KsqlClient(ksqldb_url) as ksql:
        rows = ksql.query("SELECT CUSTOMER, ITEM, TOTAL_QTY FROM CURRENT_SHOPPING_CART;").rows
    assert {(r[0], r[1]): r[2] for r in rows} == truth
