"""State stores for materialized tables.

The query thread mutates a working copy; `commit()` publishes the entries changed since
the last commit after their Kafka transaction commits, so pull queries only ever see
committed state. Behind a small interface so a disk-backed store can replace it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class StoredRow:
    """One materialized row: key and value columns, its ROWTIME, and aggregate states."""

    key: tuple[object, ...]
    values: tuple[object, ...]
    rowtime: int
    states: tuple[object, ...] = ()


class StateStore(Protocol):
    def get(self, key: bytes) -> StoredRow | None: ...

    def put(self, key: bytes, row: StoredRow | None) -> None: ...

    def commit(self) -> None: ...

    def rollback(self) -> None: ...

    def committed_get(self, key: bytes) -> StoredRow | None: ...

    def committed_rows(self) -> Iterator[StoredRow]: ...


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

    def commit(self) -> None:
        with self._lock:
            for key, row in self._dirty.items():
                if row is None:
                    self._committed.pop(key, None)
                else:
                    self._committed[key] = row
        self._dirty.clear()

    def rollback(self) -> None:
        self._dirty.clear()

    def committed_get(self, key: bytes) -> StoredRow | None:
        with self._lock:
            return self._committed.get(key)

    def committed_rows(self) -> Iterator[StoredRow]:
        with self._lock:
            rows = list(self._committed.values())
        return iter(rows)
