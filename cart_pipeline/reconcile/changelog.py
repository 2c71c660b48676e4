"""What the table served since the snapshot, read from its changelog (the CTAS sink topic).

A full pull-query scan costs as much per run as the table has keys; an incremental run must
cost in proportion to what changed. ksqlDB writes every change of a table row to the table's
sink topic (flushed before, or with, the input offsets it commits), so the records of that
topic after the snapshot's sink offsets are exactly the rows whose served value changed. A key
with no record there still serves the value the snapshot verified.

Keys are ``KEY_FORMAT='JSON'`` with several key columns: a JSON object by column name, as
ksqlDB writes it; values are JSON objects by column name; a null value deletes the row.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import orjson

from cart_pipeline.reconcile.compare import CartKey
from cart_pipeline.reconcile.store import LogReader


@dataclass
class ChangelogDelta:
    #: The last value per key in the range; None: the row was deleted.
    latest: dict[CartKey, int | None] = field(default_factory=dict)
    records: int = 0
    #: Records whose key or value is not the table's shape (the run compares in full then).
    undecodable: int = 0


def _field(doc: object, name: str) -> object:
    if not isinstance(doc, dict):
        return None
    if name in doc:
        return doc[name]
    return next((v for k, v in doc.items() if k.upper() == name.upper()), None)


def read_changelog(
    reader: LogReader,
    topic: str,
    starts: Mapping[int, int],
    ends: Mapping[int, int],
    columns: tuple[str, str, str],
) -> ChangelogDelta:
    """Fold ``[starts, ends)`` of every partition of the sink topic into the last value per key.

    ``columns`` are the customer, item and total column names.
    """
    customer_col, item_col, total_col = columns
    delta = ChangelogDelta()
    for partition, end in sorted(ends.items()):
        for msg in reader.read(topic, partition, starts.get(partition, 0), end):
            delta.records += 1
            try:
                key = orjson.loads(msg.key() or b"null")
                raw = msg.value()
                value = None if raw is None else orjson.loads(raw)
            except orjson.JSONDecodeError:
                delta.undecodable += 1
                continue
            customer, item = _field(key, customer_col), _field(key, item_col)
            total = None if value is None else _field(value, total_col)
            if not (isinstance(customer, str) and isinstance(item, str)) or (
                value is not None and type(total) is not int
            ):
                delta.undecodable += 1
                continue
            delta.latest[(customer, item)] = total  # type: ignore[assignment]
    return delta
