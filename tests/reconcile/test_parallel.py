"""Partition-parallel recomputation: same result in-process and over worker processes."""

from __future__ import annotations

import itertools
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
    assert parallel.default_workers([(0, 0, big - 1)], cpus=8) == 1  # too small: in-process
    assert parallel.default_workers([(0, 0, 10), (1, 0, 10)], cpus=8) == 1
    assert parallel.default_workers([(0, 0, 10 * big)], cpus=8) == 8  # one partition, cut
    assert parallel.default_workers([(0, 0, 10 * big)], cpus=2) == 2
    assert parallel.default_workers([(0, 0, 3 * big)], cpus=8) == 3
    two = [(0, 0, big), (1, 0, big), (2, 5, 5)]  # the empty partition counts nothing
    assert parallel.default_workers(two, cpus=8) == 2
    assert parallel.default_workers(two, cpus=1) == 1
    assert parallel.default_workers(two) == max(1, min(2, os.cpu_count() or 1))


def test_split_cuts_only_what_workers_must_share() -> None:
    four = [(0, 0, 100), (1, 0, 100), (2, 0, 100), (3, 0, 100), (4, 7, 7)]
    assert parallel.split(four, 2) == four[:4]  # similar partitions: none cut, empty dropped
    assert parallel.split(four, 1) == four[:4]
    assert parallel.split([(0, 10, 111)], 2) == [(0, 10, 60), (0, 60, 111)]
    assert parallel.split([(0, 0, 3)], 8) == [(0, 0, 1), (0, 1, 2), (0, 2, 3)]  # not below 1
    uneven = parallel.split([(0, 0, 1000), (1, 0, 100), (2, 0, 100)], 2)
    assert uneven == [(0, 0, 500), (0, 500, 1000), (1, 0, 100), (2, 0, 100)]
    for pieces in (uneven, parallel.split([(0, 5, 1234), (1, 0, 99)], 3)):
        covered: dict[int, list[tuple[int, int]]] = {}
        for p, lo, hi in pieces:
            assert hi > lo
            covered.setdefault(p, []).append((lo, hi))
        for ranges in covered.values():  # contiguous, no gap, no overlap
            assert all(a[1] == b[0] for a, b in itertools.pairwise(ranges))
    groups = parallel.assign(uneven, 2)
    assert sorted(sum(e - s for _, s, e in g) for g in groups) == [600, 600]


def test_one_partition_cut_into_ranges_across_transactions(kafka_bootstrap: str) -> None:
    """Ranges of one partition in several workers give the in-process result, with an aborted
    and a committed transaction interleaved across every cut point."""
    settings = KafkaSettings(kafka_bootstrap, timeout_s=20)
    topic = f"t_parallel_ranges_{random.Random().getrandbits(48):012x}"
    Topics(settings).ensure(topic, 1)
    rng = random.Random(11)

    def event() -> bytes:
        return (f'{{"customer":"c{rng.randrange(30)}","item":"i{rng.randrange(4)}",'
                f'"qty":{rng.choice([1, 2, 5, -1])}}}').encode()  # fmt: skip

    expected: dict[tuple[str, str], int] = {}

    def count(value: bytes) -> None:
        doc = orjson.loads(value)
        key = (doc["customer"], doc["item"])
        expected[key] = expected.get(key, 0) + doc["qty"]

    plain = Producer(settings.producer_config())
    for _ in range(300):
        value = event()
        plain.produce(topic, value, partition=0)
        count(value)
    assert plain.flush(20) == 0
    aborted = Producer(settings.producer_config(transactional_id=f"{topic}-a"))
    committed = Producer(settings.producer_config(transactional_id=f"{topic}-c"))
    for txn in (aborted, committed):
        txn.init_transactions(20)
        txn.begin_transaction()
    for _ in range(40):  # the two transactions' records interleave in the log
        for txn, keep in ((aborted, False), (committed, True)):
            for _ in range(5):
                value = event()
                txn.produce(topic, value, partition=0)
                if keep:
                    count(value)
            txn.flush(20)
    aborted.abort_transaction(20)
    committed.commit_transaction(20)
    for _ in range(300):
        value = event()
        plain.produce(topic, value, partition=0)
        count(value)
    assert plain.flush(20) == 0
    snapshot = Topics(settings).end_offsets(topic)

    one = recompute(settings, topic, snapshot, workers=1)
    assert one.totals == expected
    assert one.records == 300 + 200 + 300
    for workers in (2, 3):
        pieces = parallel.split(parallel.to_slices(snapshot), workers)
        assert len(pieces) == workers and all(p == 0 for p, _, _ in pieces)
        many = recompute(settings, topic, snapshot, workers=workers)
        assert _fields(many) == _fields(one)
