"""``/query-stream`` response reading: delimited lines, header, rows, mid-stream errors.

Lines are split on ``b"\\n"`` only. httpx's ``iter_lines()`` follows
``str.splitlines()`` and also breaks on U+2028, U+0085, \\x1c..., which ksqlDB's
JSON may carry unescaped inside string values, so it would corrupt such rows.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from types import TracebackType
from typing import Any

import httpx
import orjson

from ._errors import KsqlProtocolError
from ._http import is_error_object, server_error, transport_error
from ._models import header_columns

log = logging.getLogger("cart_pipeline.ksql")

Row = tuple[Any, ...]


def iter_lines(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """Yield non-blank ``\\n``-delimited lines from a byte stream."""
    pending = b""
    for chunk in chunks:
        if not chunk:
            continue
        parts = (pending + chunk).split(b"\n")
        pending = parts.pop()
        for part in parts:
            line = part.strip()
            if line:
                yield line
    tail = pending.strip()
    if tail:
        yield tail


class _Reader:
    """Turns the lines of one response into a header and rows, raising ksqlDB errors."""

    def __init__(self, lines: Iterator[bytes], *, method: str, url: str, statement: str) -> None:
        self._lines = lines
        self._method = method
        self._url = url
        self._statement = statement
        self._buffered: list[Any] = []  # rows of an application/json array body

    def _protocol(self, message: str, line: bytes) -> KsqlProtocolError:
        return KsqlProtocolError(
            message,
            method=self._method,
            url=self._url,
            http_status=200,
            body_excerpt=line[:200].decode("utf-8", "replace"),
        )

    def _decode(self, line: bytes) -> Any:
        try:
            return orjson.loads(line)
        except orjson.JSONDecodeError:
            raise self._protocol("a /query-stream line is not JSON", line) from None

    def _raise_if_error(self, payload: Any) -> None:
        if is_error_object(payload):
            raise server_error(
                payload,
                status=200,
                method=self._method,
                url=self._url,
                statement=self._statement,
            )

    def header(self) -> tuple[str | None, tuple[str, ...], tuple[str, ...]]:
        line = next(self._lines, None)
        if line is None:
            raise self._protocol("response ended before the header line", b"")
        payload = self._decode(line)
        # A server that ignored our Accept header sends one JSON array: [header, row...].
        if isinstance(payload, list) and payload and isinstance(payload[0], Mapping):
            self._buffered = list(payload[1:])
            payload = payload[0]
        self._raise_if_error(payload)
        if not isinstance(payload, Mapping) or "columnNames" not in payload:
            raise self._protocol("first line is not a query header with columnNames", line)
        return header_columns(payload)

    def rows(self) -> Iterator[Row]:
        """Rows until the server ends the response; skips non-row metadata objects."""
        pending = self._buffered
        self._buffered = []
        for item in pending:
            row = self._row(item, b"")
            if row is not None:
                yield row
        for line in self._lines:
            row = self._row(self._decode(line), line)
            if row is not None:
                yield row

    def _row(self, payload: Any, line: bytes) -> Row | None:
        if isinstance(payload, list):
            return tuple(payload)
        self._raise_if_error(payload)
        if isinstance(payload, Mapping):
            # Newer servers interleave consistency/continuation tokens: not rows.
            return None
        raise self._protocol("a /query-stream line is neither a row array nor an object", line)


class PushQuery:
    """A running push query: iterate it for rows as they arrive.

    Use it as a context manager (or iterate it to the end, or ``break`` out of a
    ``for`` loop) so the query is closed: on early stop the client POSTs
    ``/close-query`` for the ``query_id`` and drops the connection. Rows arrive as
    tuples in ``column_names`` order. If no bytes arrive for ``idle_timeout``
    seconds the query is closed and :class:`KsqlTimeout` raised.
    """

    def __init__(
        self,
        *,
        response: httpx.Response,
        reader: _Reader,
        header: tuple[str | None, tuple[str, ...], tuple[str, ...]],
        limit: int | None,
        close_query: Callable[[str], None],
        method: str,
        url: str,
    ) -> None:
        self.query_id, self.column_names, self.column_types = header
        self._response = response
        self._rows = reader.rows()
        self._limit = limit
        self._close_query = close_query
        self._method = method
        self._url = url
        self._count = 0
        self._ended = False  # server finished the response itself (LIMIT in SQL)
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    def __iter__(self) -> Iterator[Row]:
        try:
            while not self._closed:
                if self._limit is not None and self._count >= self._limit:
                    return
                try:
                    row = next(self._rows)
                except StopIteration:
                    self._ended = True
                    return
                except httpx.HTTPError as exc:
                    raise transport_error(exc, self._method, self._url) from exc
                self._count += 1
                yield row
        finally:
            self.close()

    def close(self) -> None:
        """Stop the query server-side (unless it already ended) and release the socket."""
        if self._closed:
            return
        self._closed = True
        try:
            if not self._ended and self.query_id:
                self._close_query(self.query_id)
        finally:
            self._response.close()

    def __enter__(self) -> PushQuery:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<PushQuery {self.query_id!r} {state} rows={self._count}>"
