"""Per-key classification and the markdown report."""

from __future__ import annotations

from cart_pipeline.reconcile.compare import DIFFERENT, EXTRA, MISSING, compare


def test_classifies_every_kind() -> None:
    expected = {("bob", "pants"): 1, ("bob", "hats"): 1, ("al", "x"): 0, ("cy", "y"): 5}
    served = {("bob", "pants"): 1, ("bob", "hats"): 3, ("al", "x"): 0, ("zed", "z"): 2}
    result = compare(expected, served)
    assert not result.ok
    assert result.keys_compared == 5 and result.matched == 2
    kinds = {(d.customer, d.item): d.kind for d in result.discrepancies}
    assert kinds == {("bob", "hats"): DIFFERENT, ("cy", "y"): MISSING, ("zed", "z"): EXTRA}
    assert result.counts == {MISSING: 1, EXTRA: 1, DIFFERENT: 1}
    assert result.percent_match == 40.0
    assert [(d.customer, d.magnitude) for d in result.worst(2)] == [("cy", 5), ("bob", 2)]


def test_in_flight_keys_are_set_aside() -> None:
    expected = {("a", "i"): 1, ("b", "i"): 2}
    served = {("a", "i"): 1, ("b", "i"): 7, ("c", "i"): 1}
    result = compare(expected, served, exclude=[("b", "i"), ("c", "i")])
    assert result.ok and result.keys_compared == 1 and result.excluded_in_flight == 2


def test_markdown_escapes_cells_and_says_when_all_match() -> None:
    assert compare({("a", "b"): 1}, {("a", "b"): 1}).markdown() == "All 1 keys match."
    table = compare({("x|y\nz", "i"): 3}, {}).markdown()
    assert "x\\|y z" in table and "missing in ksqlDB" in table and "| 3 | — |" in table
