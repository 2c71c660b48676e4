"""The transactional loader against the real broker: exactly N committed, or nothing visible.

Every check reads the topic back with an independent consumer: read_committed for what
ksqlDB and the reconciler will see, read_uncommitted to prove aborted records did reach the
log (so "nothing visible" means "aborted", not "never sent").
"""

from __future__ import annotations

import os
import re
import selectors
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from cart_pipeline.embedded import KafkaBroker
from cart_pipeline.embedded.runtime import find_java, kafka_classpath
from cart_pipeline.kafka_io import DeliveryFailed, KafkaSettings, TopicNotFound, Topics
from cart_pipeline.kafka_io.transactional import TransactionalProducer
from cart_pipeline.loader import GeneratorConfig
from cart_pipeline.loader.producer import (
    LoadProgress,
    TokenBucket,
    load_events,
    transaction_timeout_for,
    transactional_id_for,
)
from tests.loader.ksql_model import ksql_verdict
from tests.loader.replay import fold, well_formed_events
from tests.topic_reader import Records, read_topic

REPO = Path(__file__).resolve().parents[2]
SMALL = {"n_customers": 50, "n_items": 20}


def well_formed_totals(records: Records) -> dict[tuple[str, str], int]:
    return fold(well_formed_events(records))


@pytest.fixture
def settings(kafka_bootstrap: str) -> KafkaSettings:
    return KafkaSettings(kafka_bootstrap, timeout_s=15)


@pytest.fixture
def topic(settings: KafkaSettings, unique_name: str) -> str:
    Topics(settings).ensure(unique_name, partitions=3)
    return unique_name


def test_load_commits_exactly_n_with_the_expected_totals(
    settings: KafkaSettings, topic: str, kafka_bootstrap: str
) -> None:
    n = 20_000
    reports: list[LoadProgress] = []
    result = load_events(
        settings,
        topic,
        GeneratorConfig(n_events=n, seed=7, **SMALL),
        transactional_id=transactional_id_for(topic, 7, "run-1"),
        progress=reports.append,
        progress_every=5_000,
    )
    assert (result.events, result.well_formed, result.malformed) == (n, n, 0)
    records = read_topic(kafka_bootstrap, topic)
    assert len(records) == n
    assert well_formed_totals(records) == result.expected_totals()
    # Offset ranges come from the delivery reports: each partition got a contiguous range
    # from 0, followed by the commit marker (one offset) at the end of the log.
    assert sum(r.count for r in result.partitions.values()) == n
    ends = Topics(settings).end_offsets(topic)
    for partition, written in result.partitions.items():
        assert (written.first, written.last + 1) == (0, written.count)
        assert ends[partition] == written.last + 2
    # Progress: at the first chunk (8 Ki records) past each 5,000 threshold, then once with
    # everything delivered (just before the commit).
    assert [p.produced for p in reports] == [8_192, 16_384, n, n]
    assert (reports[-1].produced, reports[-1].delivered) == (n, n)
    assert reports[-1].events_per_s > 0 and str(topic) in str(reports[-1])


def test_malformed_share_lands_exactly(
    settings: KafkaSettings, topic: str, kafka_bootstrap: str
) -> None:
    config = GeneratorConfig(n_events=5_000, seed=3, malformed_share=0.05, **SMALL)
    result = load_events(settings, topic, config, transactional_id=f"{topic}-malformed")
    assert (result.events, result.malformed, result.well_formed) == (5_000, 250, 4_750)
    assert result.stats.malformed_total == 250
    records = read_topic(kafka_bootstrap, topic)
    assert len(records) == 5_000
    rejected = sum(ksql_verdict(value) != "accepted" for _, value in records)
    assert rejected == 250
    assert sum(not value for _, value in records) == 50  # EMPTY_VALUE kind, 1 in 5
    assert well_formed_totals(records) == result.expected_totals()


def test_failure_mid_transaction_shows_nothing_and_the_retry_is_exact(
    settings: KafkaSettings, topic: str, kafka_bootstrap: str
) -> None:
    n = 10_000
    config = GeneratorConfig(n_events=n, seed=11, **SMALL)
    txn_id = transactional_id_for(topic, 11, "run-fail")

    def explode(progress: LoadProgress) -> None:
        # Raise once records are acknowledged by the broker (at the latest, on the report
        # just before the commit), so the abort has something to hide.
        if progress.delivered >= 2_000:
            raise RuntimeError("disk on fire")

    with pytest.raises(DeliveryFailed, match=r"nothing was committed.*disk on fire") as info:
        load_events(
            settings, topic, config, transactional_id=txn_id, rate_limit=20_000,
            progress=explode, progress_every=1_000,
        )  # fmt: skip
    assert info.value.topic == topic
    assert isinstance(info.value.__cause__, RuntimeError)
    assert len(read_topic(kafka_bootstrap, topic, committed=False)) >= 2_000
    assert read_topic(kafka_bootstrap, topic) == []

    result = load_events(settings, topic, config, transactional_id=txn_id)
    records = read_topic(kafka_bootstrap, topic)
    assert len(records) == n
    assert well_formed_totals(records) == result.expected_totals()


def test_interrupt_aborts_and_stays_an_interrupt(
    settings: KafkaSettings, topic: str, kafka_bootstrap: str
) -> None:
    """Ctrl-C mid-load: the transaction is aborted, and the caller still sees KeyboardInterrupt."""

    def interrupt(progress: LoadProgress) -> None:
        if progress.delivered >= 1_000:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt) as info:
        load_events(
            settings, topic, GeneratorConfig(n_events=5_000, **SMALL),
            transactional_id=f"{topic}-interrupt", rate_limit=10_000,
            progress=interrupt, progress_every=500,
        )  # fmt: skip
    assert any("nothing was committed" in note for note in info.value.__notes__)
    assert len(read_topic(kafka_bootstrap, topic, committed=False)) >= 1_000
    assert read_topic(kafka_bootstrap, topic) == []


CHILD = textwrap.dedent(
    """
    import sys
    from cart_pipeline.kafka_io import KafkaSettings
    from cart_pipeline.loader import GeneratorConfig
    from cart_pipeline.loader.producer import load_events

    bootstrap, topic, txn_id, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    load_events(
        KafkaSettings(bootstrap), topic,
        GeneratorConfig(n_events=n, seed=5, n_customers=50, n_items=20),
        transactional_id=txn_id, rate_limit=2_000, progress_every=200,
        progress=lambda p: print(f"delivered={p.delivered}", flush=True),
    )
    print("committed", flush=True)
    """
)


def test_killed_load_is_invisible_and_the_retry_fences_it(
    settings: KafkaSettings, topic: str, kafka_bootstrap: str
) -> None:
    """kill -9 mid-transaction: no abort ever sent; the retry's init_transactions aborts it."""
    n = 20_000  # 10 s at the child's 2,000 events/s: it is killed long before the end
    txn_id = transactional_id_for(topic, 5, "run-kill")
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, kafka_bootstrap, topic, txn_id, str(n)],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        delivered = _wait_for_delivered(child, at_least=1_000, timeout_s=60)
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=10)
    finally:
        if child.poll() is None:
            os.kill(child.pid, signal.SIGKILL)
            child.wait(timeout=10)
    assert child.returncode == -signal.SIGKILL
    assert len(read_topic(kafka_bootstrap, topic, committed=False)) >= delivered
    # The dead transaction stays open: the last stable offset cannot pass its first record.
    assert read_topic(kafka_bootstrap, topic) == []

    started = time.monotonic()
    result = load_events(
        settings, topic, GeneratorConfig(n_events=n, seed=5, **SMALL), transactional_id=txn_id
    )
    assert time.monotonic() - started < 60  # fenced at once, not after the txn timeout
    records = read_topic(kafka_bootstrap, topic)
    assert len(records) == n
    assert well_formed_totals(records) == result.expected_totals()


def _wait_for_delivered(child: subprocess.Popen[str], *, at_least: int, timeout_s: float) -> int:
    assert child.stdout is not None
    selector = selectors.DefaultSelector()
    selector.register(child.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not selector.select(timeout=1):
            continue
        line = child.stdout.readline()
        if not line:
            stderr = child.stderr.read() if child.stderr else ""
            raise AssertionError(f"child exited early ({child.poll()}):\n{stderr[-3000:]}")
        match = re.fullmatch(r"delivered=(\d+)\n", line)
        assert match, f"unexpected child output {line!r}"
        if int(match[1]) >= at_least:
            return int(match[1])
    raise AssertionError(f"child delivered fewer than {at_least} records in {timeout_s}s")


def test_rate_limit_is_a_lower_bound_on_wall_time(
    settings: KafkaSettings, topic: str, kafka_bootstrap: str
) -> None:
    n, rate = 600, 1_000.0
    started = time.monotonic()
    result = load_events(
        settings, topic, GeneratorConfig(n_events=n, **SMALL),
        transactional_id=f"{topic}-rate", rate_limit=rate,
    )  # fmt: skip
    wall = time.monotonic() - started
    assert result.elapsed_s >= n / rate
    assert wall >= n / rate
    assert result.elapsed_s < n / rate + 10  # paced, not stalled (generous: shared CPUs)
    assert result.events_per_s <= rate
    assert len(read_topic(kafka_bootstrap, topic)) == n


def test_delivery_errors_fail_the_load_and_nothing_is_visible(
    settings: KafkaSettings, unique_name: str, kafka_bootstrap: str
) -> None:
    """The broker refuses every batch (max.message.bytes too small): no silent loss."""
    admin = AdminClient(settings.client_config())
    new = NewTopic(unique_name, 1, 1, config={"max.message.bytes": "200"})
    admin.create_topics([new])[unique_name].result(timeout=15)
    Topics(settings).ensure(unique_name, partitions=1)  # waits for the leader
    with pytest.raises(DeliveryFailed, match=r"failed delivery.*MSG_SIZE_TOO_LARGE") as info:
        load_events(
            settings, unique_name, GeneratorConfig(n_events=2_000, **SMALL),
            transactional_id=f"{unique_name}-too-large",
        )  # fmt: skip
    assert info.value.topic == unique_name and info.value.partition == 0
    assert read_topic(kafka_bootstrap, unique_name, committed=False) == []


def test_missing_topic_fails_before_any_transaction(
    settings: KafkaSettings, unique_name: str
) -> None:
    with pytest.raises(TopicNotFound, match="does not exist") as info:
        load_events(
            settings, unique_name, GeneratorConfig(n_events=10, **SMALL), transactional_id="x"
        )
    assert info.value.topic == unique_name


def test_records_are_idempotent_and_transactional_in_the_log(
    settings: KafkaSettings, topic: str, kafka_broker: KafkaBroker
) -> None:
    """What the broker stored proves the settings: producer id + sequences, transactional."""
    txn = TransactionalProducer(settings, topic, transactional_id="cfg", transaction_timeout_s=120)
    assert txn.config["enable.idempotence"] is True
    assert txn.config["acks"] == "all"
    assert txn.config["transactional.id"] == "cfg"
    assert txn.config["transaction.timeout.ms"] == 120_000
    assert txn.config["message.timeout.ms"] <= 120_000

    load_events(settings, topic, GeneratorConfig(n_events=3_000, **SMALL), transactional_id="cfg")
    segment = kafka_broker.config.data_dir / "data" / f"{topic}-0" / ("0" * 20 + ".log")
    dump = subprocess.run(
        [find_java().executable, "-cp", kafka_classpath(), "kafka.tools.DumpLogSegments",
         "--files", str(segment)],
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout  # fmt: skip
    batches = [line for line in dump.splitlines() if line.startswith("baseOffset:")]
    data, control = batches[:-1], batches[-1]
    assert data and "isControl: true" in control
    for line in data:
        fields = dict(re.findall(r"(\w+): (\S+)", line))
        assert int(fields["producerId"]) >= 0 and int(fields["baseSequence"]) >= 0, line
        assert fields["isTransactional"] == "true" and fields["isControl"] == "false", line


# -- pure units ------------------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds > 0
        self.now += seconds


def test_token_bucket_starts_empty_and_never_exceeds_the_rate() -> None:
    clock = FakeClock()
    bucket = TokenBucket(100, capacity=10, clock=clock, sleep=clock.sleep)
    for _ in range(50):
        bucket.acquire(10)
    assert clock.now == pytest.approx(5.0)  # 500 events at 100/s, none free up front
    clock.now += 60  # idle for a minute: the burst is still capped at the capacity
    before = clock.now
    for _ in range(3):
        bucket.acquire(10)
    assert clock.now - before == pytest.approx(0.2)
    with pytest.raises(ValueError, match=r"1\.\.10"):
        bucket.acquire(11)
    with pytest.raises(ValueError, match="positive"):
        TokenBucket(0, capacity=1)


def test_transactional_ids_and_timeouts() -> None:
    a = transactional_id_for("events", 1, "run-a")
    assert a == transactional_id_for("events", 1, "run-a")
    assert a != transactional_id_for("events", 1, "run-b")
    assert a != transactional_id_for("events", 2, "run-a")
    assert a.startswith("cart_pipeline-load-events-1-")
    with pytest.raises(ValueError, match="run_id"):
        transactional_id_for("events", 1, "")
    assert transaction_timeout_for(1_000) == pytest.approx(60.15)
    assert transaction_timeout_for(1_000_000) == 210  # 3 x 50 s at the assumed 20k/s + 60 s
    assert transaction_timeout_for(100_000_000) == 900
    with pytest.raises(ValueError, match="raise the rate or split the load"):
        transaction_timeout_for(1_000_000, rate_limit=1_000)
