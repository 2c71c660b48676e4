"""Command statuses and the applied command sequence number, as ksqlDB's /status sees them.

ksqlDB keeps the last status of every command id (`stream/`X`/create`, ...) in memory and
rebuilds it by replaying the command topic, so statuses survive a restart as SUCCESS with
the message the command gave. A request carrying `commandSequenceNumber` waits here until
that command has been applied, so a client reads its own writes.
"""

from __future__ import annotations

import threading


class CommandStatuses:
    """Thread-safe: written by the request (or replay) thread, read by /status handlers."""

    def __init__(self) -> None:
        self._statuses: dict[str, dict[str, object]] = {}
        self._applied = -1
        self._cond = threading.Condition()

    def reset(self) -> None:
        with self._cond:
            self._statuses.clear()
            self._applied = -1

    def put(self, command_id: str, status: dict[str, object]) -> None:
        with self._cond:
            self._statuses[command_id] = dict(status)

    def get(self, command_id: str) -> dict[str, object] | None:
        with self._cond:
            status = self._statuses.get(command_id)
            return dict(status) if status is not None else None

    def summary(self) -> dict[str, object]:
        """Every command id with its status name: ksqlDB's `CommandStatuses` map."""
        with self._cond:
            return {cid: s.get("status") for cid, s in self._statuses.items()}

    def applied(self, seq: int) -> None:
        """Record that the command at offset `seq` (and all before it) has been applied."""
        with self._cond:
            if seq > self._applied:
                self._applied = seq
                self._cond.notify_all()

    @property
    def last_applied(self) -> int:
        with self._cond:
            return self._applied

    def wait_applied(self, seq: int, timeout: float) -> bool:
        """True once the command at `seq` has been applied; False after `timeout` seconds."""
        with self._cond:
            return self._cond.wait_for(lambda: self._applied >= seq, timeout)
