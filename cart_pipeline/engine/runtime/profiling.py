"""Opt-in cProfile of persistent-query threads, for benchmarking the hot loop.

Set ``CART_KSQL_PROFILE_DIR`` and each query thread runs under its own ``cProfile``
(cProfile profiles only the thread that enables it), dumping ``<query id>.prof`` there
every few seconds and when the thread ends: a benchmark can stop the engine with SIGTERM
or SIGKILL and still read a profile. Off by default: profiling roughly halves throughput.
"""

from __future__ import annotations

import cProfile
import os
import time
from pathlib import Path

PROFILE_DIR_ENV = "CART_KSQL_PROFILE_DIR"
DUMP_EVERY_S = 5.0


class ThreadProfile:
    """A started profile of the calling thread; `maybe_dump` is cheap when not due."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._profile = cProfile.Profile()
        self._last_dump = time.monotonic()
        self._profile.enable()

    def maybe_dump(self) -> None:
        if time.monotonic() - self._last_dump >= DUMP_EVERY_S:
            self._profile.disable()
            self._profile.dump_stats(self.path)
            self._last_dump = time.monotonic()
            self._profile.enable()

    def close(self) -> None:
        self._profile.disable()
        self._profile.dump_stats(self.path)


def start_thread_profile(name: str) -> ThreadProfile | None:
    """Profile the calling thread when `CART_KSQL_PROFILE_DIR` is set, else None."""
    directory = os.environ.get(PROFILE_DIR_ENV)
    if not directory:
        return None
    Path(directory).mkdir(parents=True, exist_ok=True)
    return ThreadProfile(Path(directory) / f"{name}.prof")
