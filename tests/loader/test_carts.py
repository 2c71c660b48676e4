from __future__ import annotations

import numpy as np
import pytest

from cart_pipeline.loader.carts import CartStream, ZipfSampler


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(seed))


def _stream(seed: int = 0, **overrides: float) -> CartStream:
    params: dict[str, float] = {
        "n_customers": 30,
        "n_items": 12,
        "skew": 1.0,
        "remove_probability": 0.5,
        "max_quantity": 4,
    }
    params.update(overrides)
    return CartStream(_rng(seed), **params)  # type: ignore[arg-type]


@pytest.mark.parametrize("s", [0.0, 0.7, 1.1, 2.0])
def test_zipf_sampler_matches_its_distribution(s: float) -> None:
    sampler = ZipfSampler(50, s)
    expected = 1.0 / np.arange(1, 51) ** s
    expected /= expected.sum()
    np.testing.assert_allclose(sampler.probabilities, expected)
    draws = sampler.sample(_rng(), 400_000)
    assert draws.min() >= 0 and draws.max() < 50
    observed = np.bincount(draws, minlength=50) / draws.size
    # 400k draws: standard error <= sqrt(0.25 / 4e5) ~ 8e-4.
    assert np.max(np.abs(observed - expected)) < 5e-3


def test_zipf_sampler_rejects_bad_parameters() -> None:
    with pytest.raises(ValueError, match="n >= 1"):
        ZipfSampler(0, 1.0)
    with pytest.raises(ValueError, match="s >= 0"):
        ZipfSampler(3, -1.0)


def test_no_line_ever_goes_negative_and_removals_hit_held_lines() -> None:
    customer, item, qty = _stream().take(300_000)
    held: dict[tuple[int, int], int] = {}
    removals = 0
    for c, i, q in zip(customer.tolist(), item.tolist(), qty.tolist(), strict=True):
        assert q != 0
        current = held.get((c, i), 0)
        if q < 0:
            removals += 1
            assert current > 0, "removal from an empty line"
            assert -q <= current
        held[(c, i)] = current + q
    # remove_probability 0.5: about half the events are removals.
    assert abs(removals / qty.size - 0.5) < 0.01


@pytest.mark.parametrize("p", [0.0, 0.1, 0.3])
def test_removal_share_follows_remove_probability(p: float) -> None:
    _, _, qty = _stream(remove_probability=p).take(200_000)
    assert abs(np.count_nonzero(qty < 0) / qty.size - p) < 0.01
    assert qty.max() <= 4 and qty.min() >= -4


def test_stream_does_not_depend_on_take_sizes() -> None:
    whole = _stream(seed=3).take(100_000)
    stream = _stream(seed=3)
    parts = [stream.take(n) for n in (1, 999, 32_768, 50_000, 16_232)]
    for column, pieces in zip(whole, zip(*parts, strict=True), strict=True):
        np.testing.assert_array_equal(column, np.concatenate(pieces))


def test_invalid_remove_probability_rejected() -> None:
    with pytest.raises(ValueError, match="remove_probability"):
        _stream(remove_probability=0.9)
