"""Decode generated records back into events: the tests' independent view of a run."""

from __future__ import annotations

from collections.abc import Iterable

import orjson

from tests.loader.ksql_model import ksql_verdict

Event = tuple[str, str, int]


def well_formed_events(records: Iterable[tuple[bytes, bytes]]) -> list[Event]:
    events = []
    for key, value in records:
        if ksql_verdict(value) != "accepted":
            continue
        decoded = orjson.loads(value)
        assert key == decoded["customer"].encode("utf-8")
        events.append((decoded["customer"], decoded["item"], decoded["qty"]))
    return events


def fold(events: Iterable[Event]) -> dict[tuple[str, str], int]:
    totals: dict[tuple[str, str], int] = {}
    for customer, item, qty in events:
        totals[(customer, item)] = totals.get((customer, item), 0) + qty
    return totals
