from __future__ import annotations

import unicodedata

from cart_pipeline.loader import EDGE_CUSTOMERS, EDGE_ITEMS, GeneratorConfig
from cart_pipeline.loader.pools import build_customer_pool, build_item_pool


def _scripts(name: str) -> set[str]:
    found = set()
    for char in name:
        if char.isalpha():
            found.add(unicodedata.name(char, "?").split()[0])
    return found


def test_default_pools_have_edge_names_and_are_unique() -> None:
    config = GeneratorConfig()
    customers = build_customer_pool(config.n_customers, config.seed)
    items = build_item_pool(config.n_items, config.seed)
    assert len(customers) == len(set(customers)) == config.n_customers
    assert len(items) == len(set(items)) == config.n_items
    assert set(EDGE_CUSTOMERS) <= set(customers)
    assert set(EDGE_ITEMS) <= set(items)
    assert "Seán O'Brien" in customers and "José Müller" in customers
    # NFD text is kept as is, not normalized to NFC.
    assert "Zoe\u0308 Lefèvre" in customers
    assert unicodedata.normalize("NFC", "Zoe\u0308 Lefèvre") not in customers


def test_faker_names_span_scripts_and_punctuation() -> None:
    faker_names = set(build_customer_pool(1_000, 0)) - set(EDGE_CUSTOMERS)
    scripts = set().union(*(_scripts(name) for name in faker_names))
    assert {"LATIN", "CJK", "CYRILLIC", "GREEK", "HANGUL", "ARABIC"} <= scripts
    assert any(not name.isascii() and _scripts(name) == {"LATIN"} for name in faker_names)
    assert any("-" in name or "'" in name for name in faker_names)


def test_pools_are_deterministic_per_seed() -> None:
    assert build_customer_pool(300, 7) == build_customer_pool.__wrapped__(300, 7)
    assert build_item_pool(300, 7) == build_item_pool.__wrapped__(300, 7)
    assert build_customer_pool(300, 7) != build_customer_pool(300, 8)


def test_small_and_large_pools() -> None:
    assert set(build_customer_pool(3, 0)) == set(EDGE_CUSTOMERS[:3])
    items = build_item_pool(20_000, 1)
    assert len(set(items)) == 20_000
