"""State stores for materialized tables.

The query thread mutates a working copy; `commit()` publishes the entries changed since
the last commit after their Kafka transaction commits, so pull queries only ever see
committed state. Behind a small interface so a disk-backed store can replace it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import NamedTuple, Protocol


def compact(data: bytes) -> bytes:
    """An exact-size copy of `data`, for bytes held as long as the table lives.

    orjson.dumps returns bytes whose allocation is several KiB whatever their length:
    fine for a record on its way to Kafka, ~4 KiB per key when kept as a store key.
    """
    return memoryview(data).tobytes()


class StoredRow(NamedTuple):
    """One materialized row: key and value columns, its ROWTIME, and aggregate states.

    A NamedTuple, not a frozen dataclass: one is built per input record on the hot path
    (about 3x cheaper to build) and one is held per key (no per-instance __dict__).
    """

    key: tuple[object, ...]
    values: tuple[object, ...]
    rowtime: int
    states: tuple[object, ...] = ()
    # kept for its aggregate states but not in the table: HAVING is false for the group
    hidden: bool = False


class StateStore(Protocol):
    def get(self, key: bytes) -> StoredRow | None: ...

    def put(self, key: bytes, row: StoredRow | None) -> None: ...

    def commit(self) -> None: ...

    def rollback(self) -> None: ...

    def committed_get(self, key: bytes) -> StoredRow | None: ...

    def committed_rows(self) -> Iterator[StoredRow]: ...

    def committed_items(self) -> list[tuple[bytes, StoredRow]]: ...


class MemoryStore:
    """Dict-backed store with a committed view for readers on other threads."""

    def __init__(self) -> None:
        self._committed: dict[bytes, StoredRow] = {}
        self._dirty: dict[bytes, StoredRow | None] = {}
        self._lock = threading.Lock()

    def get(self, key: bytes) -> StoredRow | None:
        if key in self._dirty:
            return self._dirty[key]
        return self._committed.get(key)

    def put(self, key: bytes, row: StoredRow | None) -> None:
        self._dirty[key] = row

    def dirty_keys(self) -> list[bytes]:
        return list(self._dirty)

    def dirty_items(self) -> list[tuple[bytes, StoredRow | None]]:
        """(key, row or None for a delete) changed since the last commit, first change first."""
        return list(self._dirty.items())

    def commit(self) -> None:
        committed = self._committed
        with self._lock:
            for key, row in self._dirty.items():
                if row is None:
                    committed.pop(key, None)
                elif key in committed:
                    committed[key] = row  # the dict keeps its existing key object
                else:
                    committed[compact(key)] = row
        self._dirty.clear()

    def rollback(self) -> None:
        self._dirty.clear()

    # the committed view is the table readers see: rows HAVING hides are not in it

    def committed_get(self, key: bytes) -> StoredRow | None:
        with self._lock:
            row = self._committed.get(key)
        return None if row is None or row.hidden else row

    def committed_rows(self) -> Iterator[StoredRow]:
        with self._lock:
            rows = [r for r in self._committed.values() if not r.hidden]
        return iter(rows)

    def committed_items(self) -> list[tuple[bytes, StoredRow]]:
        """(key bytes, row) pairs of the committed view."""
        with self._lock:
            return [(k, r) for k, r in self._committed.items() if not r.hidden]
