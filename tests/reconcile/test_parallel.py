"""Partition-parallel recomputation: same result in-process and over worker processes."""

from __future__ import annotations

import os
import random

import orjson
import pytest
from confluent_kafka import Producer

from cart_pipeline.kafka_io import KafkaSettings, Topics
from cart_pipeline.reconcile import parallel
from cart_pipeline.reconcile.decode import BAD_FIELD_TYPE, NOT_AN_OBJECT, NOT_JSON, wrap_int32
from cart_pipeline.reconcile.recompute import Recomputation, recompute

PARTITIONS = 4

#: Values ksqlDB rejects or drops, with what the recomputation must count for them.
MALFORMED: list[tuple[bytes | None, str]] = [
    (b"not json", NOT_JSON),
    (b"", NOT_JSON),
    (b"\xff\xfe", NOT_JSON),
    (b"[1, 2]", NOT_AN_OBJECT),
    (b'"text"', NOT_AN_OBJECT),
    (b'{"customer":"c1","item":"i1","qty":true}', BAD_FIELD_TYPE),
    (b'{"customer":"c2","item":"i2","qty":"lots"}', BAD_FIELD_TYPE),
    (None, "tombstone"),
    (b'{"customer":null,"item":"i1","qty":3}', "null_key"),
    (b'{"customer":"c3","qty":3}', "null_key"),
]


def _records(n: int, seed: int) -> list[tuple[str, bytes | None]]:
    """(customer, value) pairs: canonical events, slow-path valid ones, and MALFORMED."""
    rng = random.Random(seed)
    out: list[tuple[str, bytes | None]] = []
    for i in range(n):
        customer, item = f"c{rng.randrange(20)}", f"i{rng.randrange(5)}"
        qty = rng.choice([1, 2, 3, -1, -2])
        out.append((customer, f'{{"customer":"{customer}","item":"{item}","qty":{qty}}}'.encode()))
        if i % 50 == 0:
            out.append((customer, MALFORMED[(i // 50) % len(MALFORMED)][0]))
    # Valid, but off the fast path: coerced quantities, case-insensitive names, NULL qty.
    out += [
        ("c4", b'{"customer":"c4","item":"i0","qty":"7"}'),
        ("c5", b'{"CUSTOMER":"c5","Item":"i1","qty":2.9,"extra":1}'),
        ("c6", b'{"customer":"c6","item":"i9","qty":null}'),
        # 32-bit wrap, as ksqlDB's SUM(INT)
        ("c7", b'{"customer":"c7","item":"big","qty":2147483647}'),
        ("c7", b'{"customer":"c7","item":"big","qty":2147483647}'),
    ]
    return out


def _expected(records: list[tuple[str, bytes | None]]) -> dict[tuple[str, str], int]:
    malformed = {value for value, _ in MALFORMED}
    totals: dict[tuple[str, str], int] = {}
    special = {
        b'{"customer":"c4","item":"i0","qty":"7"}': ("c4", "i0", 7),
        b'{"CUSTOMER":"c5","Item":"i1","qty":2.9,"extra":1}': ("c5", "i1", 2),
        b'{"customer":"c6","item":"i9","qty":null}': ("c6", "i9", 0),
    }
    for _, value in records:
        if value in malformed:
            continue
        assert value is not None
        if value in special:
            customer, item, qty = special[value]
        else:
            doc = orjson.loads(value)
            customer, item, qty = doc["customer"], doc["item"], doc["qty"]
        totals[(customer, item)] = wrap_int32(totals.get((customer, item), 0) + qty)
    return totals


@pytest.fixture(scope="module")
def loaded(kafka_bootstrap: str) -> tuple[KafkaSettings, str, dict[int, int], list]:
    settings = KafkaSettings(kafka_bootstrap, timeout_s=20)
    topic = f"t_parallel_{random.Random().getrandbits(48):012x}"
    Topics(settings).ensure(topic, PARTITIONS)
    records = _records(2_000, seed=7)
    producer = Producer(settings.producer_config())
    for customer, value in records:
        # Keyed by customer: a customer's events all land on one partition.
        producer.produce(topic, value, customer.encode(), int(customer[1:]) % PARTITIONS)
    assert producer.flush(20) == 0
    snapshot = Topics(settings).end_offsets(topic)
    assert len(snapshot) == PARTITIONS and all(end > 0 for end in snapshot.values())
    return settings, topic, snapshot, records


def _fields(r: Recomputation) -> tuple[object, ...]:
    return (r.totals, r.end_offsets, r.data_ends, r.records, dict(r.rejected),
            r.tombstones, r.null_keys)  # fmt: skip


def test_workers_give_identical_results(
    loaded: tuple[KafkaSettings, str, dict[int, int], list],
) -> None:
    settings, topic, snapshot, records = loaded
    one = recompute(settings, topic, snapshot, workers=1)
    two = recompute(settings, topic, snapshot, workers=2)
    four = recompute(settings, topic, snapshot, workers=4)
    assert _fields(one) == _fields(two) == _fields(four)

    assert one.totals == _expected(records)
    assert one.totals[("c7", "big")] == -2
    assert one.totals[("c6", "i9")] == 0
    assert one.records == len(records) == sum(snapshot.values())
    assert one.data_ends == snapshot == one.end_offsets
    n_bad = len(records) - len(_expected_valid(records))
    assert one.rejected_total + one.tombstones + one.null_keys == n_bad
    assert one.tombstones > 0 and one.null_keys > 0
    assert set(one.rejected) == {NOT_JSON, NOT_AN_OBJECT, BAD_FIELD_TYPE}


def _expected_valid(records: list[tuple[str, bytes | None]]) -> list[bytes | None]:
    malformed = {value for value, _ in MALFORMED}
    return [value for _, value in records if value not in malformed]


def test_parallel_folds_onto_base_and_start_offsets(
    loaded: tuple[KafkaSettings, str, dict[int, int], list],
) -> None:
    settings, topic, snapshot, _ = loaded
    half = {p: end // 2 for p, end in snapshot.items()}
    first = recompute(settings, topic, half, workers=1)
    for workers in (1, 2):
        rest = recompute(
            settings, topic, snapshot, start_offsets=half, base=first.totals, workers=workers
        )
        full = recompute(settings, topic, snapshot, workers=workers)
        assert rest.totals == full.totals
        assert rest.records + first.records == full.records


def test_empty_partitions_need_no_worker(
    loaded: tuple[KafkaSettings, str, dict[int, int], list],
) -> None:
    settings, topic, snapshot, _ = loaded
    result = recompute(settings, topic, snapshot, start_offsets=snapshot, workers=2)
    assert result.records == 0 and result.totals == {}
    assert result.end_offsets == snapshot == result.data_ends


def test_workers_must_be_positive(
    loaded: tuple[KafkaSettings, str, dict[int, int], list],
) -> None:
    settings, topic, snapshot, _ = loaded
    with pytest.raises(ValueError, match="workers"):
        recompute(settings, topic, snapshot, workers=0)


def test_assign_balances_by_size() -> None:
    slices = [(0, 0, 100), (1, 0, 10), (2, 0, 60), (3, 0, 50)]
    groups = parallel.assign(slices, 2)
    assert sorted(sum(e - s for _, s, e in g) for g in groups) == [110, 110]
    assert sorted(p for g in groups for p, _, _ in g) == [0, 1, 2, 3]
    assert parallel.assign(slices, 8) == [[s] for s in sorted(slices, key=lambda s: s[1] - s[2])]


def test_default_workers() -> None:
    big = parallel.MIN_PARALLEL_OFFSETS
    assert parallel.default_workers([(0, 0, 10 * big)], cpus=8) == 1  # one partition
    assert parallel.default_workers([(0, 0, 10), (1, 0, 10)], cpus=8) == 1  # too small
    two = [(0, 0, big), (1, 0, big), (2, 5, 5)]  # the empty partition needs no worker
    assert parallel.default_workers(two, cpus=8) == 2
    assert parallel.default_workers(two, cpus=2) == 1  # one CPU left to librdkafka
    assert parallel.default_workers(two * 3, cpus=4) == 3
    assert parallel.default_workers(two) == max(1, min(2, (os.cpu_count() or 1) - 1))
