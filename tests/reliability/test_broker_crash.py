"""Reliability scenario 1: the broker is killed (kill -9) and restarted while a load runs.

A private broker (its own data dir and ports) is killed while the loader's transaction is
open, and restarted on the same data dir and ports. Whatever the loader then does, the
ledger must balance: a load that returned was acknowledged exactly once (its delivery
offsets are exactly what a read_committed reader sees, and the records are byte-for-byte the
generator's, none lost, none twice); a load that failed raised the project's error in bounded
time with none of its records visible, and its retry (same transactional id, as the loader
prescribes) commits exactly N.

The loader is paused in its own progress callback while the broker dies, so the kill lands
at a chosen point of the transaction however fast or slow the machine is. A last test pauses
it past its transaction timeout instead: the broker aborts and fences it, and the load must
still fail with the project's error.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

import orjson
import pytest
from confluent_kafka import Consumer, KafkaError, TopicPartition

from cart_pipeline.embedded import KafkaBroker, KafkaConfig
from cart_pipeline.embedded import process as proc
from cart_pipeline.kafka_io import KafkaIOError, KafkaSettings, Topics
from cart_pipeline.loader import GeneratorConfig, generate
from cart_pipeline.loader.producer import (
    LoadProgress,
    LoadResult,
    load_events,
    transactional_id_for,
)

N = 200_000
POOLS = {"n_customers": 200, "n_items": 50}
PARTITIONS = 3
#: Bound on a load that meets a dead broker: its flush, commit and abort are each bounded
#: by the settings' timeouts, so it must return or raise well within this.
LOAD_BOUND_S = 420.0

#: (partition, offset, key, value) as a reader saw it.
Seen = tuple[int, int, bytes, bytes]


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaBroker]:
    """A broker only this module kills; the session broker serves everyone else."""
    config = KafkaConfig(
        data_dir=tmp_path_factory.mktemp("crash-kafka"),
        port=proc.free_port(),
        controller_port=proc.free_port(),
        tied_to_parent=True,
        ready_timeout_s=240,
    )
    broker = KafkaBroker(config).start()
    try:
        yield broker
    finally:
        broker.stop()


def read_log(bootstrap: str, topic: str, *, committed: bool, timeout_s: float = 180) -> list[Seen]:
    """Every record a fresh reader sees from offset 0 to the end of each partition.

    The end is the last stable offset for read_committed readers: an open transaction's
    records, and everything after them, stay invisible.
    """
    consumer = Consumer(
        KafkaSettings(bootstrap).consumer_config(
            f"ledger-{uuid.uuid4().hex[:8]}",
            **{
                "isolation.level": "read_committed" if committed else "read_uncommitted",
                "enable.partition.eof": True,
            },
        )
    )
    try:
        consumer.assign([TopicPartition(topic, p, 0) for p in range(PARTITIONS)])
        seen: list[Seen] = []
        at_end: set[int] = set()
        deadline = time.monotonic() + timeout_s
        while len(at_end) < PARTITIONS:
            assert time.monotonic() < deadline, f"{topic}: no end of log in {timeout_s}s"
            for msg in consumer.consume(10_000, 0.5):
                partition: int = msg.partition()  # type: ignore[assignment]
                err = msg.error()
                if err is not None:
                    assert err.code() == KafkaError._PARTITION_EOF, err
                    at_end.add(partition)
                    continue
                at_end.discard(partition)
                offset: int = msg.offset()  # type: ignore[assignment]
                seen.append((partition, offset, msg.key() or b"", msg.value() or b""))
        return seen
    finally:
        consumer.close()


def log_end(bootstrap: str, topic: str, *, stable: bool = False) -> int:
    """Records (and markers) in the log, committed or not: the high watermarks' sum.

    ``stable``: the last stable offsets instead (what a read_committed client gets as its
    "high watermark"), which an open transaction holds back.
    """
    isolation = "read_committed" if stable else "read_uncommitted"
    config = KafkaSettings(bootstrap).consumer_config(
        "ledger-watermarks", **{"isolation.level": isolation}
    )
    consumer = Consumer(config)
    try:
        return sum(
            consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in range(PARTITIONS)
        )
    finally:
        consumer.close()


@dataclass
class Attempt:
    """One load in a thread: its result or its error, and when it ended."""

    result: LoadResult | None = None
    error: BaseException | None = None
    duration_s: float = 0.0
    done: threading.Event = field(default_factory=threading.Event)


class PausingLoad:
    """Run ``load_events`` in a thread that stops in its progress callback at ``pause_at``
    until the test says go: the kill lands inside the transaction, at a known point."""

    def __init__(self, pause_at: str) -> None:
        self.pause_at = pause_at  # "mid-load" | "before-commit"
        self.paused, self.go = threading.Event(), threading.Event()
        self.at_pause: LoadProgress | None = None
        self.attempt = Attempt()

    def progress(self, p: LoadProgress) -> None:
        if self.paused.is_set():
            return
        last = p.produced == p.total
        if (self.pause_at == "mid-load" and not last and p.produced >= p.total // 5) or (
            self.pause_at == "before-commit" and last
        ):
            self.at_pause = p
            self.paused.set()
            assert self.go.wait(300), "the test never released the paused load"

    def wait_paused(self) -> None:
        """Until the load pauses (bounded); fails with the load's own error if it ended first."""
        deadline = time.monotonic() + LOAD_BOUND_S
        while not self.paused.wait(0.2):
            if self.attempt.done.is_set():
                raise AssertionError("the load ended before its pause") from self.attempt.error
            assert time.monotonic() < deadline, "the load never reached its pause"

    def start(
        self,
        settings: KafkaSettings,
        topic: str,
        config: GeneratorConfig,
        txn: str,
        transaction_timeout_s: float | None = None,
    ) -> None:
        def run() -> None:
            started = time.monotonic()
            try:
                self.attempt.result = load_events(
                    settings, topic, config, transactional_id=txn,
                    progress=self.progress, progress_every=8_192,
                    transaction_timeout_s=transaction_timeout_s,
                )  # fmt: skip
            except BaseException as exc:  # the verdict is the test's, in the main thread
                self.attempt.error = exc
            finally:
                self.attempt.duration_s = time.monotonic() - started
                self.attempt.done.set()

        threading.Thread(target=run, name=f"load-{topic}", daemon=True).start()


def wait_until(check: object, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"{what}: not within {timeout_s}s"
        time.sleep(0.1)


def check_ledger(
    result: LoadResult, committed: list[Seen], truth: Counter[tuple[bytes, bytes]]
) -> tuple[int, int]:
    """What the loader acknowledged == what read_committed readers see == the generator's
    records. Returns (lost, duplicated) for the figures (both asserted 0)."""
    got = Counter((key, value) for _, _, key, value in committed)
    lost = sum((truth - got).values())
    duplicated = sum((got - truth).values())
    assert (lost, duplicated) == (0, 0), f"lost {lost}, duplicated {duplicated}"
    assert result.events == sum(r.count for r in result.partitions.values()) == truth.total()
    by_partition: dict[int, set[int]] = {}
    for partition, offset, _, _ in committed:
        by_partition.setdefault(partition, set()).add(offset)
    # Each acknowledged offset range is exactly the committed records of its partition.
    assert set(by_partition) == set(result.partitions)
    for partition, written in result.partitions.items():
        assert written.last - written.first + 1 == written.count, (partition, written)
        assert by_partition[partition] == set(range(written.first, written.last + 1))
    totals: dict[tuple[str, str], int] = {}
    for key, value in got.elements():
        customer, item, qty = _decode(key, value)
        totals[(customer, item)] = totals.get((customer, item), 0) + qty
    assert totals == result.expected_totals()
    return lost, duplicated


def _decode(key: bytes, value: bytes) -> tuple[str, str, int]:
    event = orjson.loads(value)
    assert key == event["customer"].encode()
    return event["customer"], event["item"], event["qty"]


@pytest.mark.timeout(1500)
@pytest.mark.parametrize(
    "scenario",
    [
        # Killed with 1/5 of the load produced, restarted at once: the load rides it out
        # (or, on a slow restart, times out and fails cleanly).
        "mid-load",
        # Every record acknowledged, killed just before commit_transaction: the commit
        # meets a dead, then a restarting broker.
        pytest.param("before-commit", marks=pytest.mark.slow),
        # Killed mid-load and kept down until the load gives up: it must fail cleanly.
        pytest.param("outage", marks=pytest.mark.slow),
    ],
)
def test_broker_kill_9_during_a_load(broker: KafkaBroker, scenario: str) -> None:
    bootstrap = broker.config.bootstrap_servers
    settings = KafkaSettings(bootstrap, timeout_s=30)
    topic = f"crash_{scenario.replace('-', '_')}_{uuid.uuid4().hex[:8]}"
    Topics(settings).ensure(topic, partitions=PARTITIONS)
    seed = 17
    config = GeneratorConfig(n_events=N, seed=seed, **POOLS)
    txn_id = transactional_id_for(topic, seed, f"run-{scenario}")
    truth = Counter(generate(config).records)

    load = PausingLoad("before-commit" if scenario == "before-commit" else "mid-load")
    # In the outage a 30 s transaction (so 30 s message) timeout: records time out while the
    # broker is down. Elsewhere the loader's own sizing.
    load.start(settings, topic, config, txn_id, 30 if scenario == "outage" else None)
    load.wait_paused()
    # Records must be in the log (uncommitted) before the kill: the transaction is live.
    wait_until(lambda: log_end(bootstrap, topic) > 0, 120, "records reaching the log")
    assert load.at_pause is not None
    acked_at_kill = load.at_pause.delivered
    in_log_at_kill = log_end(bootstrap, topic)
    old_pid = broker.pid
    broker.kill()
    assert old_pid is not None and not proc.is_alive(old_pid)
    killed_at = time.monotonic()
    load.go.set()

    if scenario == "outage":  # stay down until the load has given up
        assert load.attempt.done.wait(LOAD_BOUND_S), "the load hung while the broker was down"
    # The dead JVM's listening socket can outlast its pid by a moment: start() would refuse.
    cfg = broker.config
    wait_until(lambda: proc.port_is_free(cfg.host, cfg.port), 60, "the dead broker's port")
    wait_until(lambda: proc.port_is_free(cfg.host, cfg.controller_port), 60, "its controller")
    broker.start()
    down_s = time.monotonic() - killed_at
    assert load.attempt.done.wait(LOAD_BOUND_S), f"the load hung: no outcome in {LOAD_BOUND_S}s"
    first = load.attempt

    uncommitted = read_log(bootstrap, topic, committed=False)
    # Nothing the broker had written (and acknowledged: acks=all) before the kill was lost.
    assert len(uncommitted) >= max(in_log_at_kill, acked_at_kill)
    retried = first.result is None
    if first.result is not None:
        result = first.result
        outcome = "committed"
    else:
        error = first.error
        assert isinstance(error, KafkaIOError), f"not a clear load error: {error!r}"
        assert error.topic == topic
        text = " ".join([str(error), *getattr(error, "__notes__", [])])
        # Either the abort went through, or the error says who will abort (broker or retry).
        assert "nothing was committed" in text or "the broker aborts it" in text, text
        assert read_log(bootstrap, topic, committed=True) == [], "a failed load is visible"
        outcome = f"failed ({type(error).__name__}: {str(error)[:160]})"
        started = time.monotonic()
        result = load_events(settings, topic, config, transactional_id=txn_id)
        assert time.monotonic() - started < LOAD_BOUND_S

    committed = read_log(bootstrap, topic, committed=True)
    lost, duplicated = check_ledger(result, committed, truth)
    in_log = len(read_log(bootstrap, topic, committed=False))
    figures = {
        "scenario": f"broker kill -9 ({scenario})",
        "first attempt": outcome,
        "first attempt s": round(first.duration_s, 1),
        "broker down s": round(down_s, 1),
        "acked at kill": acked_at_kill,
        "in log at kill": in_log_at_kill,
        "retried": retried,
        "written": result.events,
        "read (read_committed)": len(committed),
        "lost": lost,
        "duplicated": duplicated,
        "aborted records in log": in_log - len(committed),
    }
    print("\nFIGURES " + " | ".join(f"{k}: {v}" for k, v in figures.items()))


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_load_outliving_its_transaction_fails_clearly(broker: KafkaBroker) -> None:
    """The broker aborts a transaction open past its timeout and fences the producer: the
    load must say so (not "SystemError: ... returned a result with an exception set", which
    is how confluent-kafka surfaces the fatal error) and its retry must be exact."""
    bootstrap = broker.config.bootstrap_servers
    settings = KafkaSettings(bootstrap, timeout_s=30)
    topic = f"crash_stalled_{uuid.uuid4().hex[:8]}"
    Topics(settings).ensure(topic, partitions=PARTITIONS)
    config = GeneratorConfig(n_events=50_000, seed=23, **POOLS)
    txn_id = transactional_id_for(topic, 23, "run-stalled")

    load = PausingLoad("mid-load")
    load.start(settings, topic, config, txn_id, transaction_timeout_s=5)
    load.wait_paused()
    # The broker's timeout check (every 10 s) aborts it: abort markers free the stable offset.
    wait_until(lambda: log_end(bootstrap, topic, stable=True) > 0, 180, "the broker's abort")
    load.go.set()
    assert load.attempt.done.wait(LOAD_BOUND_S), "the fenced load hung"
    error = load.attempt.error
    assert isinstance(error, KafkaIOError), f"not a clear load error: {error!r}"
    assert error.topic == topic
    assert "SystemError" not in str(error), str(error)
    assert "fenced" in str(error).lower() or "epoch" in str(error).lower(), str(error)
    assert read_log(bootstrap, topic, committed=True) == []

    result = load_events(settings, topic, config, transactional_id=txn_id)
    committed = read_log(bootstrap, topic, committed=True)
    lost, duplicated = check_ledger(result, committed, Counter(generate(config).records))
    print(
        f"\nFIGURES scenario: load stalled past its transaction timeout | first attempt: "
        f"failed ({str(error)[:160]}) | written: {result.events} | read: {len(committed)} "
        f"| lost: {lost} | duplicated: {duplicated}"
    )
