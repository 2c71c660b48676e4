"""The batch fast path (``fast_decode.py``) gives exactly the per-record path's results."""

from __future__ import annotations

import random
from collections import Counter

import orjson
import pytest
from confluent_kafka import Producer

from cart_pipeline.kafka_io import KafkaSettings, Topics
from cart_pipeline.reconcile import fast_decode
from cart_pipeline.reconcile.decode import BAD_FIELD_TYPE, NOT_AN_OBJECT, NOT_JSON, wrap_int32
from cart_pipeline.reconcile.fast_decode import decode_batch, fold_batch, fold_value
from cart_pipeline.reconcile.recompute import Recomputation, recompute, recompute_partition

ROW, TOMBSTONE, NULL_KEY = "row", "tombstone", "null_key"

#: Off the loader's canonical shape, with what ksqlDB makes of each: ("row", customer, item,
#: qty as summed), ("rejected", reason), ("tombstone",) or ("null_key",).
TRICKY: list[tuple[bytes | None, tuple[object, ...]]] = [
    # case variants: exact column name (upper case) first, then case-insensitive, last wins
    (b'{"CUSTOMER":"b","Item":"x","QTY":4}', (ROW, "b", "x", 4)),
    (b'{"customer":"a","item":"x","qty":1,"CUSTOMER":"b"}', (ROW, "b", "x", 1)),
    (b'{"customer":"a","item":"x","qty":1,"Customer":"b"}', (ROW, "b", "x", 1)),
    (b'{"customer":"a","item":"x","qty":1,"extra":true}', (ROW, "a", "x", 1)),
    # ksqlDB's coercions
    (b'{"customer":"a","item":"x","qty":"3"}', (ROW, "a", "x", 3)),
    (b'{"customer":"a","item":"x","qty":2.5}', (ROW, "a", "x", 2)),
    (b'{"customer":"a","item":"x","qty":-2.5}', (ROW, "a", "x", -2)),
    (b'{"customer":"a","item":"x","qty":2.0}', (ROW, "a", "x", 2)),
    (b'{"customer":"a","item":"x","qty":1e2}', (ROW, "a", "x", 100)),
    (b'{"customer":7,"item":"x","qty":1}', (ROW, "7", "x", 1)),
    # NULLs: a NULL qty is skipped by SUM, a NULL customer or item drops the row
    (b'{"customer":"a","item":"n","qty":null}', (ROW, "a", "n", 0)),
    (b'{"customer":"a","item":"m"}', (ROW, "a", "m", 0)),
    (b'{"customer":null,"item":"x","qty":1}', (NULL_KEY,)),
    (b'{"customer":"a","qty":1}', (NULL_KEY,)),
    # malformed, non-object, bad types
    (b'{"customer":"a","item":"x","qty":', ("rejected", NOT_JSON)),
    (b"", ("rejected", NOT_JSON)),
    (b"\xff", ("rejected", NOT_JSON)),
    (b'{"customer":"a","item":"x","qty":1,"note":"\xff"}', ("rejected", NOT_JSON)),
    (b'{"customer":"a","item":"x","qty":1,"note":NaN}', ("rejected", NOT_JSON)),
    (b"[1, 2]", ("rejected", NOT_AN_OBJECT)),
    (b"42", ("rejected", NOT_AN_OBJECT)),
    (b"null", ("rejected", NOT_AN_OBJECT)),
    (b'{"customer":"a","item":"x","qty":true}', ("rejected", BAD_FIELD_TYPE)),
    (b'{"customer":"a","item":"x","qty":"lots"}', ("rejected", BAD_FIELD_TYPE)),
    # 32-bit wrap of the quantity itself (Java intValue), also beyond 64 bits
    (b'{"customer":"a","item":"w","qty":2147483648}', (ROW, "a", "w", -2147483648)),
    (b'{"customer":"a","item":"w","qty":4294967297}', (ROW, "a", "w", 1)),
    (b'{"customer":"a","item":"w","qty":99999999999999999999999}', (ROW, "a", "w", -159383553)),
    (b'{"customer":"a","item":"w","qty":-9223372036854775809}', (ROW, "a", "w", -1)),
    # duplicate keys: the last one wins
    (b'{"customer":"a","item":"x","qty":1,"qty":5}', (ROW, "a", "x", 5)),
    (b'{"customer":"z","customer":"a","item":"x","qty":1}', (ROW, "a", "x", 1)),
    (b'{"customer":"a","item":"x","qty":1,"qty":null}', (ROW, "a", "x", 0)),
    (b'{"customer":"a","item":"x","qty":"x","qty":1}', (ROW, "a", "x", 1)),
    # content after the first JSON value is ignored; a BOM and whitespace are skipped
    (b'{"customer":"a","item":"x","qty":1} trailing', (ROW, "a", "x", 1)),
    (b'{"customer":"a","item":"x","qty":1},{"customer":"a","item":"x","qty":1}', (ROW, "a", "x", 1)),  # noqa: E501
    (b'\xef\xbb\xbf {"customer":"a","item":"x","qty":1}', (ROW, "a", "x", 1)),
    (b' \n{"customer":"a","item":"x","qty":1}\t', (ROW, "a", "x", 1)),
    # escapes, including a lone surrogate (Jackson and the general path keep it)
    (b'{"cust\\u006fmer":"\\u00e9\\ud83d\\ude00","item":"x","qty":1}', (ROW, "é😀", "x", 1)),
    (b'{"customer":"\\ud800","item":"x","qty":1}', (ROW, "\ud800", "x", 1)),
    (None, (TOMBSTONE,)),
]  # fmt: skip


def _canonical(rng: random.Random) -> bytes:
    customer, item, qty = f"c{rng.randrange(30)}", f"i{rng.randrange(8)}", rng.randrange(-3, 9)
    return f'{{"customer":"{customer}","item":"{item}","qty":{qty}}}'.encode()


def _mixed(n: int, seed: int) -> list[bytes | None]:
    rng = random.Random(seed)
    values: list[bytes | None] = [_canonical(rng) for _ in range(n)]
    for value, _ in TRICKY * 3:
        values.insert(rng.randrange(len(values) + 1), value)
    # Overflow of the sum of in-range quantities, as ksqlDB's SUM(INT)
    values += [b'{"customer":"c0","item":"big","qty":2147483647}'] * 3
    return values


def _hand_totals(values: list[bytes | None]) -> tuple[dict[tuple[str, str], int], Counter[str]]:
    """Totals and rejections from the TRICKY table and plain parsing of canonical values."""
    expected = dict(TRICKY)
    totals: dict[tuple[str, str], int] = {}
    outcomes: Counter[str] = Counter()
    for value in values:
        if value in expected:
            kind, *rest = expected[value]
        else:
            assert value is not None
            doc = orjson.loads(value)
            kind, rest = ROW, [doc["customer"], doc["item"], doc["qty"]]
        if kind == ROW:
            key = (str(rest[0]), str(rest[1]))
            totals[key] = wrap_int32(totals.get(key, 0) + int(str(rest[2])))
        else:
            outcomes[kind if kind != "rejected" else str(rest[0])] += 1
    return totals, outcomes


def _per_record(values: list[bytes | None]) -> tuple[dict[tuple[str, str], int], Counter[str]]:
    acc: dict[tuple[str, str], int] = {}
    rejected: Counter[str] = Counter()
    outcomes: Counter[int] = Counter(fold_value(v, acc, rejected) for v in values)
    rejected[TOMBSTONE] = outcomes[fast_decode.TOMBSTONE]
    rejected[NULL_KEY] = outcomes[fast_decode.NULL_KEY]
    return acc, +rejected


@pytest.mark.parametrize("value, expected", TRICKY)
def test_tricky_value_matches_the_table(value: bytes | None, expected: tuple[object, ...]) -> None:
    acc: dict[tuple[str, str], int] = {}
    rejected: Counter[str] = Counter()
    tombstones, null_keys = fold_batch([value], acc, rejected)
    got: tuple[object, ...]
    if acc:
        ((customer, item), qty) = acc.popitem()
        got = (ROW, customer, item, qty)
    elif rejected:
        got = ("rejected", *rejected)
    else:
        got = (TOMBSTONE,) if tombstones else (NULL_KEY,) if null_keys else ()
    assert got == expected


def test_only_canonical_values_take_the_typed_decoder() -> None:
    values = [value for value, _ in TRICKY]
    accepted = []
    for value, expected in TRICKY:
        events, others = decode_batch([value])
        assert len(events) + len(others) == 1
        if events:  # what the typed decoder takes, it reads as the general path does
            event = events[0]
            assert (ROW, event.customer, event.item, wrap_int32(event.qty)) == expected
            accepted.append(value)
    # Exact names, str/str/int, nothing else: the wraps, duplicates, whitespace, escapes.
    assert len(accepted) == 8, accepted
    assert all(b'"qty":' in v and b"CUSTOMER" not in v and b"null" not in v for v in accepted)
    rng = random.Random(3)
    canonical = [_canonical(rng) for _ in range(50)]
    refused = [v for v in values if v not in accepted]
    mixed = canonical[:25] + refused + canonical[25:]
    events, others = decode_batch(mixed)
    assert [[e.customer, e.item, e.qty] for e in events] == [
        list(orjson.loads(v).values()) for v in canonical
    ]
    assert others == list(range(25, 25 + len(refused)))


def test_fold_batch_equals_per_record_and_hand_computed() -> None:
    values = _mixed(3_000, seed=11)
    acc: dict[tuple[str, str], int] = {}
    rejected: Counter[str] = Counter()
    tombstones, null_keys = fold_batch(values, acc, rejected)
    fast = (acc, +Counter({**rejected, TOMBSTONE: tombstones, NULL_KEY: null_keys}))
    assert fast == _per_record(values)
    assert fast == _hand_totals(values)
    assert acc[("c0", "big")] == 2147483645  # 3 x (2^31 - 1), wrapped
    assert acc[("b", "x")] == 3 * (4 + 1 + 1)
    assert acc[("a", "w")] == wrap_int32(3 * (-2147483648 + 1 - 159383553 - 1))


# --- against a real broker: recompute_partition with the fast path on and off ---------------


@pytest.fixture(scope="module")
def mixed_topic(kafka_bootstrap: str) -> tuple[KafkaSettings, str, int, list[bytes | None]]:
    settings = KafkaSettings(kafka_bootstrap, timeout_s=20)
    topic = f"t_fast_{random.Random().getrandbits(48):012x}"
    Topics(settings).ensure(topic, 1)
    values = _mixed(25_000, seed=5)  # more than one consume() batch (recompute.BATCH)
    producer = Producer(settings.producer_config())
    for value in values:
        producer.produce(topic, value, b"k", 0)
    assert producer.flush(20) == 0
    end = Topics(settings).end_offsets(topic)[0]
    assert end == len(values)
    return settings, topic, end, values


def _fields(r: Recomputation) -> tuple[object, ...]:
    return (r.totals, r.end_offsets, r.data_ends, r.records, dict(r.rejected),
            r.tombstones, r.null_keys)  # fmt: skip


@pytest.mark.parametrize("start, end_share", [(0, 1.0), (0, 0.55), (7_777, 1.0), (12_345, 0.9)])
def test_fast_path_equals_per_record_path(
    mixed_topic: tuple[KafkaSettings, str, int, list[bytes | None]], start: int, end_share: float
) -> None:
    settings, topic, full_end, values = mixed_topic
    end = int(full_end * end_share)  # mid-batch ends: the batch crossing it takes the slow loop
    fast = recompute_partition(settings, topic, 0, end, start, fast_path=True)
    slow = recompute_partition(settings, topic, 0, end, start, fast_path=False)
    assert _fields(fast) == _fields(slow)
    totals, outcomes = _hand_totals(values[start:end])
    assert fast.totals == totals
    assert +Counter({**fast.rejected, TOMBSTONE: fast.tombstones, NULL_KEY: fast.null_keys}) == (
        outcomes
    )
    assert fast.records == end - start and fast.data_ends == {0: end}


def test_recompute_uses_the_fast_path_by_default(
    mixed_topic: tuple[KafkaSettings, str, int, list[bytes | None]],
) -> None:
    settings, topic, end, values = mixed_topic
    result = recompute(settings, topic, {0: end})
    slow = recompute_partition(settings, topic, 0, end, fast_path=False)
    assert _fields(result) == _fields(slow)
    assert result.totals == _hand_totals(values)[0]
    assert result.totals[("c0", "big")] == 2147483645
    assert result.rejected[NOT_JSON] == 3 * 5 and result.tombstones == 3
