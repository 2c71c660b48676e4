"""Watches persistent queries for failures their own loop cannot see, as Kafka Streams does.

A query whose source or sink topic is deleted out from under it cannot make progress: a
consumer of a deleted topic just sees no records, and with topic auto-creation off its
produces only time out much later. ksqlDB reports such a query in state ERROR (a USER
error: "out-of-band topic deletion") and keeps retrying it with back-off; so does this
monitor, off the queries' hot path: one metadata request per interval for all queries.
A query that failed on its own thread (and is being retried there) is shown RUNNING again
once its retry has resumed consuming.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from confluent_kafka.admin import AdminClient

from cart_pipeline.engine.runtime.persistent import PersistentQuery

LOG = logging.getLogger(__name__)
INTERVAL_S = 2.0
# ksqlDB's ksql.query.retry.backoff.initial.ms / .max.ms
BACKOFF_INITIAL_S = 15.0
BACKOFF_MAX_S = 900.0


def missing_topic_message(query: PersistentQuery, role: str, topic: str) -> str:
    return (
        f"Query {query.query_id} cannot run: its {role} topic '{topic}' does not exist "
        "(deleted out of band?)"
    )


class QueryMonitor:
    """Background thread: marks queries ERROR on missing topics, retries them when back."""

    def __init__(self, admin: AdminClient, queries: Callable[[], list[PersistentQuery]]) -> None:
        self.admin = admin
        self.queries = queries
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._backoff: dict[str, tuple[float, float]] = {}  # id -> (retry at, next delay)
        self._suspects: set[str] = set()  # ids with a topic missing at the last check

    def start(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(target=self._loop, name="query-monitor", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)

    def _loop(self) -> None:
        while not self._stop.wait(INTERVAL_S):
            try:
                self.check()
            except Exception:  # a metadata hiccup must not end the monitor
                LOG.debug("query health check failed", exc_info=True)

    def check(self) -> None:
        queries = self.queries()
        if not queries:
            return
        topics = set(self.admin.list_topics(timeout=10).topics)
        now = time.monotonic()
        for q in queries:
            missing = [
                (role, topic)
                for role, topic in (("source", q.plan.source.topic), ("sink", q.sink.topic))
                if topic not in topics
            ]
            if missing:
                # missing twice in a row: a topic just created may not be in metadata yet
                if q.query_id not in self._suspects:
                    self._suspects.add(q.query_id)
                elif q.is_alive():
                    role, topic = missing[0]
                    LOG.error("%s", missing_topic_message(q, role, topic))
                    q.fail(missing_topic_message(q, role, topic))
                    self._backoff[q.query_id] = (now + BACKOFF_INITIAL_S, BACKOFF_INITIAL_S)
                continue
            self._suspects.discard(q.query_id)
            if q.state != "ERROR":
                self._backoff.pop(q.query_id, None)
            elif q.is_alive():
                if q.ready.is_set():  # its own retry resumed consuming
                    q.state = "RUNNING"
            else:
                retry_at, delay = self._backoff.get(q.query_id, (now, BACKOFF_INITIAL_S))
                if now >= retry_at:
                    LOG.info("retrying query %s", q.query_id)
                    self._backoff[q.query_id] = (now + delay, min(delay * 2, BACKOFF_MAX_S))
                    q.restart()
