"""Seeded pools of customer names and item names.

Faker costs ~150 us per name, far too slow per event, so the pools are built once (unique
values, cached per ``(size, seed)``) and events only sample indices into them. The pool
order is shuffled, because position in the pool is the Zipf popularity rank.

Names deliberately span several scripts and carry quotes, apostrophes, backslashes,
combining marks and astral-plane characters: they must reach ksqlDB byte-for-byte, and a
pipeline that mangles them should fail its reconciliation.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from functools import lru_cache

from faker import Faker

#: Faker locales for customer names with relative weights. en_IE supplies O'Brien-style
#: apostrophes; de/es/fr/pt accents; ja/zh/ko/ru/el/ar non-Latin scripts (ar is RTL).
CUSTOMER_LOCALES: tuple[tuple[str, int], ...] = (
    ("en_US", 6),
    ("en_IE", 3),
    ("en_GB", 2),
    ("de_DE", 2),
    ("es_ES", 2),
    ("fr_FR", 2),
    ("pt_BR", 1),
    ("pl_PL", 1),
    ("ja_JP", 1),
    ("zh_CN", 1),
    ("ko_KR", 1),
    ("ru_RU", 1),
    ("el_GR", 1),
    ("ar_SA", 1),
)

#: Always in the customer pool (when it is big enough), so every default run exercises
#: JSON escaping (``"``, ``\``), apostrophes, accents (NFC and NFD), non-Latin scripts and
#: a 4-byte UTF-8 character.
EDGE_CUSTOMERS: tuple[str, ...] = (
    "Seán O'Brien",
    "José Müller",
    'Dwayne "The Rock" Johnson',
    "Zoe\u0308 Lefèvre",  # NFD: e + combining diaeresis; must not be normalized
    "山田 太郎",
    "Иван Петров",
    "王秀英",
    "Γιώργος Παπαδόπουλος",
    "Back\\Slash O'Neill",
    "Ana 🛒 Lima",
)

#: Always in the item catalog (when it is big enough), for the same reasons.
EDGE_ITEMS: tuple[str, ...] = (
    '12" Pizza Stone',
    "Kids' Rain Boots",
    "Crème Brûlée Torch",
    "抹茶 Matcha Tea",
    "Чай Black Tea",
    "Ελληνικός Καφές",
    "C:\\Temp Mug",
)

_ADJECTIVES: tuple[str, ...] = (
    "Classic",
    "Compact",
    "Deluxe",
    "Eco",
    "Ergonomic",
    "Foldable",
    "Heavy-Duty",
    "Insulated",
    "Mini",
    "Organic",
    "Portable",
    "Premium",
    "Rustic",
    "Smart",
    "Vintage",
    "Waterproof",
    "Wireless",
    "Handmade",
    "Stainless",
    "Travel",
)

_NOUNS: tuple[str, ...] = (
    "Backpack",
    "Blender",
    "Bottle",
    "Candle",
    "Chair",
    "Coffee Beans",
    "Cushion",
    "Desk Lamp",
    "Headphones",
    "Jacket",
    "Kettle",
    "Keyboard",
    "Knife Set",
    "Lunch Box",
    "Mug",
    "Notebook",
    "Pan",
    "Pillow",
    "Plant Pot",
    "Rug",
    "Scarf",
    "Sneakers",
    "Socks",
    "Speaker",
    "Sunglasses",
    "Teapot",
    "Tent",
    "Towel",
    "T-Shirt",
    "Umbrella",
    "Wallet",
    "Watch",
    "Yoga Mat",
    "Olive Oil",
    "Pasta",
    "Honey",
    "Dark Chocolate",
    "Green Tea",
    "Rice Cooker",
    "Toaster",
)

_CAMEL = re.compile(r"(?<=[a-z])(?=[A-Z])")

# Faker names repeat (small locales); after this many draws per requested name we stop
# hoping for new ones and disambiguate with a numeric suffix instead.
_ATTEMPTS_PER_NAME = 4


@lru_cache(maxsize=32)
def build_customer_pool(size: int, seed: int) -> tuple[str, ...]:
    """Return ``size`` unique customer names, deterministic for ``(size, seed)``."""
    rng = random.Random(f"customers:{seed}")
    fakers = []
    for index, (locale, _weight) in enumerate(CUSTOMER_LOCALES):
        fake = Faker(locale)
        fake.seed_instance(seed * 1_000 + index)
        fakers.append(fake)
    weights = [weight for _locale, weight in CUSTOMER_LOCALES]

    def draw() -> str:
        return rng.choices(fakers, weights)[0].name()

    return _unique_pool(size, EDGE_CUSTOMERS, draw, rng)


@lru_cache(maxsize=32)
def build_item_pool(size: int, seed: int) -> tuple[str, ...]:
    """Return ``size`` unique product-like item names, deterministic for ``(size, seed)``."""
    rng = random.Random(f"items:{seed}")
    fake = Faker("en_US")
    fake.seed_instance(seed)

    def draw() -> str:
        color = _CAMEL.sub(" ", fake.color_name())
        noun = rng.choice(_NOUNS)
        if rng.random() < 0.5:
            return f"{color} {noun}"
        return f"{rng.choice(_ADJECTIVES)} {color} {noun}"

    return _unique_pool(size, EDGE_ITEMS, draw, rng)


def _unique_pool(
    size: int, edge: tuple[str, ...], draw: Callable[[], str], rng: random.Random
) -> tuple[str, ...]:
    if size < 0:
        raise ValueError(f"pool size must be >= 0, got {size}")
    names: dict[str, None] = dict.fromkeys(edge[:size])
    attempts = 0
    while len(names) < size and attempts < _ATTEMPTS_PER_NAME * size:
        names.setdefault(draw(), None)
        attempts += 1
    suffix = 2
    while len(names) < size:
        names.setdefault(f"{draw()} {suffix}", None)
        suffix += 1
    pool = list(names)
    rng.shuffle(pool)
    return tuple(pool)
