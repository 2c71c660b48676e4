"""Helpers for engine tests: an HTTP client speaking ksqlDB's API, and private engines.

Most tests share the session engine (`ksqldb_url`); restart and crash tests start their
own engine subprocess with a private service id, so their command topic is their own.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.conftest import EngineProcess

KSQL_JSON = "application/vnd.ksql.v1+json"


class KsqlClient:
    def __init__(self, url: str) -> None:
        self.url = url
        self.http = httpx.Client(base_url=url, timeout=60)

    def post_ksql(self, sql: str, props: dict[str, Any] | None = None) -> httpx.Response:
        return self.http.post(
            "/ksql",
            json={"ksql": sql, "streamsProperties": props or {}},
            headers={"Accept": KSQL_JSON},
        )

    def ksql(self, sql: str, props: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        r = self.post_ksql(sql, props)
        assert r.status_code == 200, r.text
        return r.json()  # type: ignore[no-any-return]

    def pull(self, sql: str) -> tuple[dict[str, Any], list[list[Any]]]:
        r = self.http.post("/query-stream", json={"sql": sql, "properties": {}})
        assert r.status_code == 200, r.text
        lines = [orjson.loads(line) for line in r.text.splitlines() if line.strip()]
        return lines[0], lines[1:]

    def push(
        self,
        sql: str,
        props: dict[str, Any],
        until: Callable[[list[list[Any]]], bool],
        timeout: float = 30.0,
    ) -> tuple[dict[str, Any], list[list[Any]]]:
        """Read a push query's rows until `until(rows)` holds (bounded), then disconnect."""
        rows: list[list[Any]] = []
        header: dict[str, Any] = {}
        deadline = time.monotonic() + timeout
        with self.http.stream(
            "POST",
            "/query-stream",
            json={"sql": sql, "properties": props},
            timeout=httpx.Timeout(timeout, read=timeout),
        ) as r:
            assert r.status_code == 200, r.read().decode()
            for line in r.iter_lines():
                if not line.strip():
                    continue
                doc = orjson.loads(line)
                if isinstance(doc, dict) and "queryId" in doc:
                    header = doc
                else:
                    rows.append(doc)
                if until(rows) or time.monotonic() > deadline:
                    break
        return header, rows

    def close(self) -> None:
        self.http.close()


def wait_for(check: Callable[[], Any], timeout: float = 30.0, interval: float = 0.3) -> Any:
    """Poll `check` until it returns a truthy value; fail (never hang) after `timeout`."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"condition not met in {timeout}s (last value: {last!r})")


@pytest.fixture
def client(ksqldb_url: str) -> Iterator[KsqlClient]:
    c = KsqlClient(ksqldb_url)
    yield c
    c.close()


class PrivateEngine(EngineProcess):
    """An engine subprocess with its own service id (so its own command topic and query
    names); restartable and killable (-9)."""

    def __init__(self, bootstrap: str, state_dir: Path) -> None:
        super().__init__(bootstrap, state_dir, service_id=f"t{uuid.uuid4().hex[:8]}_")


@pytest.fixture
def private_engine(kafka_bootstrap: str, tmp_path: Path) -> Iterator[PrivateEngine]:
    engine = PrivateEngine(kafka_bootstrap, tmp_path)
    try:
        yield engine
    finally:
        engine.stop()
