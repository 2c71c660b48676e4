from __future__ import annotations

import collections

import orjson
import pytest

from cart_pipeline.loader import (
    EDGE_CUSTOMERS,
    EDGE_ITEMS,
    MALFORMED_KINDS,
    CartEventGenerator,
    GeneratorConfig,
    MalformedKind,
    generate,
)
from cart_pipeline.loader.generator import DENSE_TOTALS_LIMIT
from tests.loader.ksql_model import ksql_verdict
from tests.loader.replay import fold, well_formed_events

SMALL = GeneratorConfig(n_events=40_000, seed=11, n_customers=200, n_items=80)


def test_same_seed_gives_byte_identical_records_whatever_the_batch_size() -> None:
    config = GeneratorConfig(n_events=30_000, seed=5, malformed_share=0.05)
    first = generate(config)
    again = generate(config, batch_size=7_777)
    tiny = generate(GeneratorConfig(n_events=3_000, seed=5, malformed_share=0.05), batch_size=1)
    assert first.records == again.records
    assert tiny.records == first.records[:3_000]
    assert first.expected_totals == again.expected_totals
    assert first.stats == again.stats


def test_different_seed_gives_different_records() -> None:
    one = generate(GeneratorConfig(n_events=5_000, seed=1))
    two = generate(GeneratorConfig(n_events=5_000, seed=2))
    assert one.records != two.records
    assert one.expected_totals != two.expected_totals


def test_values_are_exactly_the_orjson_encoding_of_three_typed_fields() -> None:
    config = GeneratorConfig(n_events=20_000, seed=3, max_quantity=9)
    run = generate(config)
    for key, value in run.records:
        decoded = orjson.loads(value)
        assert list(decoded) == ["customer", "item", "qty"]
        assert type(decoded["customer"]) is str and type(decoded["item"]) is str
        assert type(decoded["qty"]) is int and 1 <= abs(decoded["qty"]) <= 9
        assert key == decoded["customer"].encode("utf-8")
        assert value == orjson.dumps(decoded)


def test_split_tail_layout_encodes_identically() -> None:
    # 2_000 items x (2 * 200 + 1) quantities exceeds the fused-table limit.
    big = GeneratorConfig(n_events=20_000, seed=4, n_items=2_000, max_quantity=200)
    generator = CartEventGenerator(big)
    assert not generator._encoder.fused
    run = generate(big)
    for _key, value in run.records:
        assert value == orjson.dumps(orjson.loads(value))
    assert fold(well_formed_events(run.records)) == run.expected_totals


def test_no_cart_line_ever_goes_negative() -> None:
    config = GeneratorConfig(
        n_events=150_000, seed=9, n_customers=40, n_items=15, remove_probability=0.5
    )
    held: dict[tuple[str, str], int] = {}
    emptied = 0
    for customer, item, qty in well_formed_events(generate(config).records):
        line = (customer, item)
        if qty < 0:
            assert held.get(line, 0) >= -qty > 0
            emptied += held[line] == -qty
        held[line] = held.get(line, 0) + qty
    assert min(held.values()) >= 0
    assert emptied > 0  # removals do take lines all the way down to zero


@pytest.mark.parametrize("share", [0.0, 0.037, 0.5])
def test_expected_totals_equal_a_refold_of_the_well_formed_records(share: float) -> None:
    config = GeneratorConfig(
        n_events=SMALL.n_events,
        seed=SMALL.seed,
        n_customers=SMALL.n_customers,
        n_items=SMALL.n_items,
        malformed_share=share,
    )
    run = generate(config)
    events = well_formed_events(run.records)
    assert len(events) == run.stats.well_formed
    assert run.expected_totals == fold(events)
    assert sum(1 for _c, _i, q in events if q > 0) == run.stats.adds
    assert sum(1 for _c, _i, q in events if q < 0) == run.stats.removes


def test_sparse_totals_path_matches_refold() -> None:
    config = GeneratorConfig(n_events=50_000, seed=2, n_customers=3_000, n_items=1_500)
    assert config.n_customers * config.n_items > DENSE_TOTALS_LIMIT
    run = generate(config)
    assert run.expected_totals == fold(well_formed_events(run.records))


def test_malformed_share_and_per_kind_counts_are_exact() -> None:
    config = GeneratorConfig(n_events=10_003, seed=1, malformed_share=0.1)
    run = generate(config)
    verdicts = collections.Counter(ksql_verdict(value) for _key, value in run.records)
    assert verdicts == {"accepted": 9_003, "rejected": 1_000}
    assert run.stats.malformed == dict.fromkeys(MALFORMED_KINDS, 200)
    assert run.stats.malformed_total == 1_000
    assert run.stats.records == 10_003
    assert run.stats.well_formed == 9_003
    empties = sum(1 for _key, value in run.records if value == b"")
    assert empties == run.stats.malformed[MalformedKind.EMPTY_VALUE]
    customers = set(CartEventGenerator(config).customers)
    assert all(key.decode("utf-8") in customers for key, _value in run.records)


def test_uneven_kind_counts_cycle_in_order() -> None:
    run = generate(GeneratorConfig(n_events=7, malformed_share=1.0))
    assert list(run.stats.malformed.values()) == [2, 2, 1, 1, 1]
    assert run.expected_totals == {}
    assert run.stats.well_formed == 0


def test_malformed_records_do_not_change_the_well_formed_stream() -> None:
    clean = generate(GeneratorConfig(n_events=20_000, seed=8))
    dirty = generate(GeneratorConfig(n_events=20_000, seed=8, malformed_share=0.25))
    dirty_events = well_formed_events(dirty.records)
    assert len(dirty_events) == 15_000
    assert dirty_events == well_formed_events(clean.records)[:15_000]


def test_edge_names_flow_through_verbatim() -> None:
    run = generate(GeneratorConfig(n_events=200_000))
    seen_customers: set[str] = set()
    seen_items: set[str] = set()
    for key, value in run.records:
        decoded = orjson.loads(value)
        customer = key.decode("utf-8")
        assert decoded["customer"] == customer
        if customer in EDGE_CUSTOMERS:
            seen_customers.add(customer)
            assert orjson.dumps(customer) in value
        if decoded["item"] in EDGE_ITEMS:
            seen_items.add(decoded["item"])
    assert seen_customers == set(EDGE_CUSTOMERS)
    assert seen_items == set(EDGE_ITEMS)
    assert ("Seán O'Brien" in {c for c, _i in run.expected_totals}) is True


def _top_customer_share(skew: float) -> float:
    run = generate(GeneratorConfig(n_events=100_000, seed=4, n_customers=500, skew=skew))
    counts = collections.Counter(key for key, _value in run.records)
    return counts.most_common(1)[0][1] / len(run.records)


def test_zipf_skew_is_visible_in_customer_popularity() -> None:
    uniform = 1 / 500
    skewed = _top_customer_share(1.2)
    flat = _top_customer_share(0.0)
    # Zipf(1.2) over 500 ranks gives the top rank ~22% of all draws.
    assert skewed > 0.18
    assert skewed > 50 * uniform
    assert flat < 2 * uniform


def test_generator_is_single_use_and_validates_batch_size() -> None:
    generator = CartEventGenerator(GeneratorConfig(n_events=10))
    assert sum(len(batch) for batch in generator.batches()) == 10
    with pytest.raises(RuntimeError, match="single use"):
        generator.batches()
    with pytest.raises(ValueError, match="batch_size"):
        CartEventGenerator(GeneratorConfig(), batch_size=0)


def test_zero_events() -> None:
    run = generate(GeneratorConfig(n_events=0))
    assert run.records == [] and run.expected_totals == {}
    assert run.stats.records == 0
