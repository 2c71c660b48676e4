"""``KsqlClient``: the only way pipeline code talks to ksqlDB.

Speaks the documented REST API only (``/ksql``, ``/query-stream``,
``/close-query``, ``/info``, ``/healthcheck``), so one code path serves the
embedded engine, Confluent Platform's server and Confluent Cloud alike.
"""

from __future__ import annotations

import logging
import os
import ssl
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import httpx
import orjson
import tenacity

from ._config import DEFAULT_TIMEOUT_S, DEFAULT_URL, settings_from_env
from ._errors import (
    KsqlConfigError,
    KsqlError,
    KsqlNotReady,
    KsqlProtocolError,
    KsqlServerError,
    KsqlTimeout,
    KsqlTransportError,
)
from ._http import (
    DELIMITED_V1,
    KSQL_V1_JSON,
    decode_json,
    error_from_response,
    split_credentials,
    ssl_verify,
    transport_error,
)
from ._models import (
    Entity,
    HealthStatus,
    QueryInfo,
    QueryList,
    QueryResult,
    ServerInfo,
    SourceDescription,
    SourceInfo,
    SourceList,
    TopicInfo,
    TopicList,
    parse_entity,
    parse_health,
    parse_server_info,
)
from ._streaming import PushQuery, _Reader, iter_lines
from .sql import quote_identifier, render_insert_values

log = logging.getLogger("cart_pipeline.ksql")

T = TypeVar("T")
Properties = Mapping[str, Any]

_USE_DEFAULT: Any = object()


class KsqlClient:
    """Synchronous ksqlDB REST client (thread-safe; one connection pool per client).

    ``timeout`` bounds each read/write, ``connect_timeout`` each connect. A 503 /
    50302 "server not ready" answer is retried with jittered backoff for at most
    ``not_ready_retry_s`` seconds in total (0 disables): statements rejected that
    way were never run, so resending is safe. Connection failures are *not*
    retried here — use :meth:`wait_until_ready` at start-up.
    """

    def __init__(
        self,
        url: str = DEFAULT_URL,
        *,
        username: str | None = None,
        password: str | None = None,
        verify: bool | str | Path | ssl.SSLContext = True,
        timeout: float = DEFAULT_TIMEOUT_S,
        connect_timeout: float = 5.0,
        not_ready_retry_s: float = 30.0,
    ) -> None:
        base_url, url_user, url_password = split_credentials(url)
        username = username if username is not None else url_user
        password = password if password is not None else url_password
        if (username is None) != (password is None):
            raise KsqlConfigError("give both username and password (API key and secret) or neither")
        if timeout <= 0 or connect_timeout <= 0 or not_ready_retry_s < 0:
            raise KsqlConfigError("timeouts must be > 0 and not_ready_retry_s >= 0")
        self.url = base_url
        self.username = username
        self._has_password = password is not None
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.not_ready_retry_s = not_ready_retry_s
        self._http = httpx.Client(
            base_url=base_url,
            auth=httpx.BasicAuth(username, password) if username and password else None,
            verify=ssl_verify(verify),
            timeout=self._timeout(timeout),
            headers={"User-Agent": "cart-pipeline-ksql/0.1"},
            follow_redirects=False,
            trust_env=False,
        )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> KsqlClient:
        """Build from ``CART_KSQLDB_URL`` / ``_USERNAME`` / ``_PASSWORD`` /
        ``_TIMEOUT_S`` / ``_VERIFY`` (true, false or a CA bundle path)."""
        s = settings_from_env(os.environ if environ is None else environ)
        kwargs: dict[str, Any] = {
            "username": s.username,
            "password": s.password,
            "timeout": s.timeout,
            "verify": s.verify,
        }
        kwargs.update(overrides)
        return cls(s.url, **kwargs)

    def __repr__(self) -> str:
        password = "'***'" if self._has_password else "None"
        return f"KsqlClient(url={self.url!r}, username={self.username!r}, password={password})"

    # -- lifecycle -----------------------------------------------------------------

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> KsqlClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- plumbing ------------------------------------------------------------------

    def _timeout(self, read: float | None) -> httpx.Timeout:
        return httpx.Timeout(self.timeout, connect=self.connect_timeout, read=read)

    def _full(self, path: str) -> str:
        return self.url + path

    def _retrying(self, fn: Callable[[], T], budget: float | None = None) -> T:
        budget = self.not_ready_retry_s if budget is None else budget
        if budget <= 0:
            return fn()
        retryer = tenacity.Retrying(
            retry=tenacity.retry_if_exception_type(KsqlNotReady),
            stop=tenacity.stop_before_delay(budget),
            wait=tenacity.wait_exponential_jitter(multiplier=0.2, max=2.0, jitter=0.2),
            reraise=True,
            before_sleep=lambda state: log.info(
                "ksqlDB not ready (attempt %d), retrying", state.attempt_number
            ),
        )
        return retryer(fn)

    def _send(
        self,
        method: str,
        path: str,
        *,
        body: Mapping[str, Any] | None = None,
        accept: str = KSQL_V1_JSON,
        content_type: str = KSQL_V1_JSON,
        statement: str | None = None,
        timeout: httpx.Timeout | None = None,
        retry_budget: float | None = None,
    ) -> Any:
        """One JSON request/response exchange, errors mapped, 503 retried."""
        url = self._full(path)

        def attempt() -> Any:
            headers = {"Accept": accept}
            content = None
            if body is not None:
                headers["Content-Type"] = content_type
                content = orjson.dumps(body)
            try:
                response = self._http.request(
                    method,
                    path,
                    content=content,
                    headers=headers,
                    timeout=timeout if timeout is not None else httpx.USE_CLIENT_DEFAULT,
                )
            except httpx.HTTPError as exc:
                raise transport_error(exc, method, url) from exc
            if not response.is_success:
                raise error_from_response(
                    response.status_code,
                    response.content,
                    method=method,
                    url=url,
                    statement=statement,
                )
            return decode_json(
                response.content, status=response.status_code, method=method, url=url
            )

        return self._retrying(attempt, retry_budget)

    def _open_stream(
        self, sql: str, properties: Properties | None, read_timeout: float | None
    ) -> tuple[httpx.Response, _Reader]:
        """POST /query-stream and return the live response once its status is 2xx."""
        method, path = "POST", "/query-stream"
        url = self._full(path)
        payload = {"sql": sql, "properties": dict(properties or {})}

        def attempt() -> tuple[httpx.Response, _Reader]:
            request = self._http.build_request(
                method,
                path,
                content=orjson.dumps(payload),
                headers={"Accept": DELIMITED_V1, "Content-Type": "application/json"},
                timeout=self._timeout(read_timeout),
            )
            try:
                response = self._http.send(request, stream=True)
            except httpx.HTTPError as exc:
                raise transport_error(exc, method, url) from exc
            if not response.is_success:
                try:
                    body = response.read()
                except httpx.HTTPError as exc:
                    raise transport_error(exc, method, url) from exc
                finally:
                    response.close()
                raise error_from_response(
                    response.status_code, body, method=method, url=url, statement=sql
                )
            lines = iter_lines(response.iter_bytes())
            return response, _Reader(lines, method=method, url=url, statement=sql)

        return self._retrying(attempt)

    def _entities(self, payload: Any, url: str) -> list[Entity]:
        if not isinstance(payload, list) or not all(
            isinstance(e, Mapping) and isinstance(e.get("@type"), str) for e in payload
        ):
            raise KsqlProtocolError(
                "/ksql answered 2xx but not with a list of {'@type': ...} entities",
                method="POST",
                url=url,
                http_status=200,
                body_excerpt=orjson.dumps(payload)[:200].decode("utf-8", "replace"),
            )
        return [parse_entity(e) for e in payload]

    # -- statements ----------------------------------------------------------------

    def execute(self, statements: str, *, properties: Properties | None = None) -> list[Entity]:
        """Run one or more ``;``-terminated statements via ``POST /ksql``.

        Returns one typed entity per statement that produced one (INSERT VALUES
        produces none). ``properties`` become ``streamsProperties``.
        """
        if not isinstance(statements, str) or not statements.strip():
            raise KsqlConfigError("execute() needs a non-empty SQL string")
        body = {"ksql": statements, "streamsProperties": dict(properties or {})}
        payload = self._send("POST", "/ksql", body=body, statement=statements)
        return self._entities(payload, self._full("/ksql"))

    def _single(self, sql: str, kind: type[T]) -> T:
        for entity in self.execute(sql):
            if isinstance(entity, kind):
                return entity
        raise KsqlProtocolError(
            f"no {kind.__name__} entity in the answer to {sql!r}",
            method="POST",
            url=self._full("/ksql"),
            http_status=200,
        )

    def list_streams(self) -> list[SourceInfo]:
        return list(self._single("LIST STREAMS;", SourceList).sources)

    def list_tables(self) -> list[SourceInfo]:
        return list(self._single("LIST TABLES;", SourceList).sources)

    def list_queries(self) -> list[QueryInfo]:
        return list(self._single("LIST QUERIES;", QueryList).queries)

    def list_topics(self) -> list[TopicInfo]:
        return list(self._single("LIST TOPICS;", TopicList).topics)

    def describe(self, name: str, *, extended: bool = False) -> SourceDescription:
        """``DESCRIBE`` a stream/table; ``name`` is exact and case-sensitive (quoted)."""
        suffix = " EXTENDED" if extended else ""
        return self._single(f"DESCRIBE {quote_identifier(name)}{suffix};", SourceDescription)

    def insert_values(self, source: str, row: Mapping[str, Any]) -> list[Entity]:
        """``INSERT INTO source (cols) VALUES (...)`` with every name and value quoted."""
        return self.execute(render_insert_values(source, row))

    # -- queries -------------------------------------------------------------------

    def query(self, sql: str, *, properties: Properties | None = None) -> QueryResult:
        """Run a pull query via ``POST /query-stream`` and collect every row.

        Bounded by ``timeout`` between received chunks; a push query without LIMIT
        therefore ends in :class:`KsqlTimeout` — use :meth:`stream` for those.
        """
        response, reader = self._open_stream(sql, properties, self.timeout)
        url = self._full("/query-stream")
        try:
            query_id, names, types = reader.header()
            rows = tuple(reader.rows())
        except httpx.HTTPError as exc:
            raise transport_error(exc, "POST", url) from exc
        finally:
            response.close()
        return QueryResult(query_id=query_id, column_names=names, column_types=types, rows=rows)

    def stream(
        self,
        sql: str,
        *,
        properties: Properties | None = None,
        limit: int | None = None,
        idle_timeout: float | None = _USE_DEFAULT,
    ) -> PushQuery:
        """Start a push query (``EMIT CHANGES``); iterate the result for rows.

        ``limit`` stops after that many rows client-side and closes the query.
        ``idle_timeout`` (default: the client ``timeout``) bounds the wait for the
        response and between chunks; pass ``None`` to wait indefinitely on a quiet
        stream. Errors in the statement are raised here, before any row.
        """
        if limit is not None and limit < 0:
            raise KsqlConfigError("limit must be >= 0")
        read = self.timeout if idle_timeout is _USE_DEFAULT else idle_timeout
        response, reader = self._open_stream(sql, properties, read)
        url = self._full("/query-stream")
        try:
            header = reader.header()
        except BaseException as exc:
            response.close()
            if isinstance(exc, httpx.HTTPError):
                raise transport_error(exc, "POST", url) from exc
            raise
        return PushQuery(
            response=response,
            reader=reader,
            header=header,
            limit=limit,
            close_query=self._close_query,
            method="POST",
            url=url,
        )

    def _close_query(self, query_id: str) -> None:
        """Best effort: the connection drop ends the query anyway, so never raise."""
        try:
            self._send(
                "POST",
                "/close-query",
                body={"queryId": query_id},
                accept="application/json",
                content_type="application/json",
                timeout=httpx.Timeout(min(self.timeout, 5.0), connect=self.connect_timeout),
                retry_budget=0,
            )
        except KsqlError as exc:
            log.debug("close-query %s failed: %s", query_id, exc)

    # -- server status -------------------------------------------------------------

    def server_info(self) -> ServerInfo:
        """``GET /info``: version, cluster ids, and (newer servers) serverStatus."""
        payload = self._send("GET", "/info", accept="application/json")
        if not isinstance(payload, Mapping) or not isinstance(
            payload.get("KsqlServerInfo"), Mapping
        ):
            raise KsqlProtocolError(
                "/info answer has no KsqlServerInfo object",
                method="GET",
                url=self._full("/info"),
                http_status=200,
            )
        return parse_server_info(payload)

    def healthcheck(self) -> HealthStatus:
        """``GET /healthcheck``; an unhealthy server answers 503 with the same body."""
        url = self._full("/healthcheck")
        try:
            response = self._http.get("/healthcheck", headers={"Accept": "application/json"})
        except httpx.HTTPError as exc:
            raise transport_error(exc, "GET", url) from exc
        if response.status_code in (200, 503):
            try:
                payload = orjson.loads(response.content)
            except orjson.JSONDecodeError:
                payload = None
            if isinstance(payload, Mapping) and "isHealthy" in payload:
                return parse_health(payload)
        raise error_from_response(
            response.status_code, response.content, method="GET", url=url, statement=None
        )

    def wait_until_ready(self, timeout: float = 60.0, *, poll_s: float = 0.5) -> ServerInfo:
        """Block until ``/info`` answers RUNNING and a ``LIST STREAMS`` succeeds.

        Connection refusals and not-ready answers are polled through; auth and
        protocol errors are raised at once (waiting would not fix them). Raises
        :class:`KsqlTimeout` (chained to the last failure) after ``timeout`` s.
        """
        deadline = time.monotonic() + timeout
        last: KsqlError | None = None
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            per_try = httpx.Timeout(
                min(self.timeout, remaining), connect=min(self.connect_timeout, remaining)
            )
            try:
                payload = self._send(
                    "GET", "/info", accept="application/json", timeout=per_try, retry_budget=0
                )
                info = parse_server_info(payload) if isinstance(payload, Mapping) else None
                if info is None or info.server_status not in (None, "", "RUNNING"):
                    last = KsqlNotReady(
                        f"serverStatus is {info.server_status if info else None!r}",
                        method="GET",
                        url=self._full("/info"),
                        http_status=200,
                    )
                else:
                    self._send(
                        "POST",
                        "/ksql",
                        body={"ksql": "LIST STREAMS;", "streamsProperties": {}},
                        statement="LIST STREAMS;",
                        timeout=per_try,
                        retry_budget=0,
                    )
                    return info
            except (KsqlTransportError, KsqlNotReady) as exc:
                last = exc
            except KsqlServerError as exc:
                if exc.http_status < 500:
                    raise
                last = exc
            time.sleep(max(0.0, min(poll_s, deadline - time.monotonic())))
        raise KsqlTimeout(
            f"ksqlDB not ready within {timeout:g}s; last error: {last}",
            method="GET",
            url=self._full("/info"),
            cause=last,
        ) from last
