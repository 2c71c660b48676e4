"""Streaming query results over HTTP/1.1 chunked responses.

A query's blocking row iterator runs on its own thread and hands rows to the event loop
through a queue, so a client disconnect (or /close-query) ends the query promptly and
the Kafka consumer is always closed by the thread that owns it.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator

from cart_pipeline.engine.errors import SERVER_ERROR, KsqlError
from cart_pipeline.engine.runtime.transient import Tombstone, TransientQuery
from cart_pipeline.engine.server.errors import error_body
from cart_pipeline.engine.server.json import dumps

_DONE = object()


async def rows(tq: TransientQuery) -> AsyncIterator[list[object]]:
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[object] = asyncio.Queue()

    def put(item: object) -> None:
        with contextlib.suppress(RuntimeError):  # loop already closed
            loop.call_soon_threadsafe(queue.put_nowait, item)

    def worker() -> None:
        try:
            for row in tq.rows:
                if tq.closed.is_set():
                    break
                if row:
                    put(row)
        except Exception as exc:
            put(exc)
        finally:
            put(_DONE)

    threading.Thread(target=worker, name=f"rows-{tq.query_id}", daemon=True).start()
    try:
        while True:
            item = await queue.get()
            if item is _DONE:
                return
            if isinstance(item, Exception):
                raise item
            yield item  # type: ignore[misc]
    finally:
        tq.close()


def _error_line(exc: Exception) -> bytes:
    err = exc if isinstance(exc, KsqlError) else KsqlError(str(exc), SERVER_ERROR)
    return dumps(error_body(err))


async def query_stream_delimited(tq: TransientQuery) -> AsyncIterator[bytes]:
    """/query-stream default: one JSON document per line (header, then row arrays)."""
    try:
        yield (
            dumps(
                {
                    "queryId": tq.query_id,
                    "columnNames": tq.column_names,
                    "columnTypes": tq.column_types,
                }
            )
            + b"\n"
        )
        async for row in rows(tq):
            yield dumps(row) + b"\n"
    except Exception as exc:
        yield _error_line(exc) + b"\n"
    finally:
        tq.close()  # also when the client left before the rows started


async def query_stream_json(tq: TransientQuery) -> AsyncIterator[bytes]:
    """/query-stream with Accept: application/json: one JSON array, streamed."""
    try:
        yield b"[" + dumps(
            {"queryId": tq.query_id, "columnNames": tq.column_names, "columnTypes": tq.column_types}
        )
        try:
            async for row in rows(tq):
                yield b",\n" + dumps(row)
        except Exception as exc:
            yield b",\n" + _error_line(exc)
        yield b"]\n"
    finally:
        tq.close()


async def legacy_query(tq: TransientQuery) -> AsyncIterator[bytes]:
    """/query: `[{"header":..},{"row":..},...,{"finalMessage":..}]`, streamed."""
    try:
        async for chunk in _legacy_query(tq):
            yield chunk
    finally:
        tq.close()


async def _legacy_query(tq: TransientQuery) -> AsyncIterator[bytes]:
    yield b"[" + dumps({"header": {"queryId": tq.query_id, "schema": tq.schema()}})
    try:
        async for row in rows(tq):
            entry: dict[str, object] = {"columns": row}
            if isinstance(row, Tombstone):
                entry["tombstone"] = True
            yield b",\n" + dumps({"row": entry})
    except Exception as exc:
        yield b",\n" + _error_line(exc) + b"]\n"
        return
    if tq.limit_reached:
        yield b",\n" + dumps({"finalMessage": "Limit Reached"})
    elif tq.is_pull and tq.plan.source.kind == "STREAM":
        yield b",\n" + dumps({"finalMessage": "Query Completed"})
    yield b"]\n"
