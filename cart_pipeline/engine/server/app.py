"""Starlette app: ksqlDB's REST routes over one Engine."""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import AsyncIterator
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from cart_pipeline.engine.config import KSQL_VERSION, Config
from cart_pipeline.engine.engine import Engine
from cart_pipeline.engine.errors import (
    BAD_REQUEST,
    NOT_FOUND,
    SERVER_NOT_READY,
    KsqlError,
    KsqlStatementError,
)
from cart_pipeline.engine.server import streaming
from cart_pipeline.engine.server.errors import error_response
from cart_pipeline.engine.server.json import (
    DELIMITED_MEDIA_TYPE,
    JSON_MEDIA_TYPE,
    dumps,
    response_media_type,
)

LOG = logging.getLogger(__name__)
ALWAYS_AVAILABLE = frozenset({"/healthcheck", "/chc/ready", "/chc/live", "/info"})
#: Largest request body read; bigger ones get 413 (status = error_code // 100).
MAX_BODY_BYTES = 8 * 1024 * 1024
#: An oversized body is read and discarded up to this much, so the client gets to read the
#: 413 instead of a reset connection; beyond it the connection is dropped.
MAX_DISCARD_BYTES = 64 * 1024 * 1024
REQUEST_TOO_LARGE = 41300


def _json(obj: object, status: int = 200, media_type: str = JSON_MEDIA_TYPE) -> Response:
    return Response(dumps(obj), status_code=status, media_type=media_type)


async def _read_bounded(request: Request) -> bytes:
    """The body, or KsqlError(413) without buffering more than MAX_BODY_BYTES of it."""
    declared = request.headers.get("content-length", "")
    too_large = declared.isdigit() and int(declared) > MAX_BODY_BYTES
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            too_large = True
        if too_large:
            chunks.clear()
            if size > MAX_DISCARD_BYTES:
                break
        else:
            chunks.append(chunk)
    if too_large:
        raise KsqlError(
            f"Request body too large: more than {MAX_BODY_BYTES} bytes", REQUEST_TOO_LARGE
        )
    return b"".join(chunks)


async def _body(request: Request) -> dict[str, Any]:
    raw = await _read_bounded(request)
    try:
        data = orjson.loads(raw or b"{}")
    except orjson.JSONDecodeError as exc:
        raise KsqlError(f"Error parsing request body: {exc}", BAD_REQUEST) from exc
    if not isinstance(data, dict):
        raise KsqlError("Request body must be a JSON object", BAD_REQUEST)
    return data


def _props(value: object) -> dict[str, str]:
    if not isinstance(value, dict):
        return {}
    return {str(k): str(v) for k, v in value.items()}


def _command_sequence_number(body: dict[str, Any]) -> int | None:
    """The request's `commandSequenceNumber` (a long; numeric strings coerced, as Jackson)."""
    value = body.get("commandSequenceNumber")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise KsqlError("Invalid commandSequenceNumber: expected a number", BAD_REQUEST)
    try:
        return int(value)
    except ValueError as exc:
        raise KsqlError("Invalid commandSequenceNumber: expected a number", BAD_REQUEST) from exc


def build_app(config: Config, engine: Engine | None = None) -> Starlette:
    """The ASGI app; the engine replays its catalog in the background after startup."""
    engine = engine if engine is not None else Engine(config)
    engine_ready = engine.ready

    async def ksql(request: Request) -> Response:
        media = response_media_type(request.headers.get("accept"))
        try:
            body = await _body(request)
            text = body.get("ksql")
            if not isinstance(text, str):
                raise KsqlError("Required field 'ksql' is missing", BAD_REQUEST)
            props = _props(body.get("streamsProperties"))
            seq = _command_sequence_number(body)
            if seq is not None:
                await run_in_threadpool(engine.await_command, seq)
            entities = await run_in_threadpool(engine.execute, text, props)
        except KsqlError as exc:
            return error_response(exc, media)
        return _json(entities, media_type=media)

    async def query_stream(request: Request) -> Response:
        try:
            body = await _body(request)
            sql = body.get("sql")
            if not isinstance(sql, str):
                raise KsqlError("Required field 'sql' is missing", BAD_REQUEST)
            tq = await run_in_threadpool(engine.prepare_query, sql, _props(body.get("properties")))
        except KsqlError as exc:
            return error_response(exc)
        accept = request.headers.get("accept") or ""
        if "application/json" in accept:
            return StreamingResponse(streaming.query_stream_json(tq), media_type=JSON_MEDIA_TYPE)
        return StreamingResponse(
            streaming.query_stream_delimited(tq), media_type=DELIMITED_MEDIA_TYPE
        )

    async def legacy_query(request: Request) -> Response:
        media = response_media_type(request.headers.get("accept"))
        try:
            body = await _body(request)
            text = body.get("ksql")
            if not isinstance(text, str):
                raise KsqlError("Required field 'ksql' is missing", BAD_REQUEST)
            seq = _command_sequence_number(body)
            if seq is not None:
                await run_in_threadpool(engine.await_command, seq)
            tq = await run_in_threadpool(
                engine.prepare_query, text, _props(body.get("streamsProperties"))
            )
        except KsqlError as exc:
            return error_response(exc, media)
        return StreamingResponse(streaming.legacy_query(tq), media_type=media)

    async def close_query(request: Request) -> Response:
        try:
            body = await _body(request)
        except KsqlError as exc:
            return error_response(exc)
        query_id = str(body.get("queryId", ""))
        if not engine.close_query(query_id):
            return error_response(
                KsqlStatementError(f"No query with id {query_id}", "", BAD_REQUEST)
            )
        return Response(b"", status_code=200)

    async def all_statuses(request: Request) -> Response:
        media = response_media_type(request.headers.get("accept"))
        return _json({"commandStatuses": engine.statuses.summary()}, media_type=media)

    async def status(request: Request) -> Response:
        """ksqlDB's CommandId: type and action are case-insensitive, printed lower-case."""
        media = response_media_type(request.headers.get("accept"))
        p = request.path_params
        command_id = f"{p['type'].lower()}/{p['entity']}/{p['action'].lower()}"
        found = engine.statuses.get(command_id)
        if found is None:
            return error_response(KsqlError("Command not found", NOT_FOUND), media)
        return _json(found, media_type=media)

    async def info(request: Request) -> Response:
        status = "RUNNING" if engine.ready.is_set() else "INITIALIZING"
        return _json(
            {
                "KsqlServerInfo": {
                    "version": KSQL_VERSION,
                    "kafkaClusterId": engine.cluster_id,
                    "ksqlServiceId": config.service_id,
                    "serverStatus": status,
                }
            },
            media_type=response_media_type(request.headers.get("accept")),
        )

    async def healthcheck(request: Request) -> Response:
        ok = engine.ready.is_set()
        detail = {"isHealthy": ok}
        return _json(
            {
                "isHealthy": ok,
                "details": {"metastore": detail, "kafka": detail, "commandRunner": detail},
                "serverState": "READY" if ok else "STARTING",
            },
            status=200 if ok else 503,
        )

    async def ready(request: Request) -> Response:
        ok = engine.ready.is_set()
        return _json({"isHealthy": ok}, status=200 if ok else 503)

    async def live(request: Request) -> Response:
        return _json({"isHealthy": True})

    class ReadinessGate:
        """Every route but the health/info ones answers 50302 until the catalog is replayed."""

        def __init__(self, app: ASGIApp) -> None:
            self.app = app

        async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
            if (
                scope["type"] == "http"
                and scope["path"] not in ALWAYS_AVAILABLE
                and not engine_ready.is_set()
            ):
                response = error_response(
                    KsqlError("KSQL is not yet ready to serve requests.", SERVER_NOT_READY)
                )
                await response(scope, receive, send)
                return
            await self.app(scope, receive, send)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        stopping = threading.Event()

        def start() -> None:
            while not stopping.is_set():
                try:
                    engine.start()
                    return
                except Exception:
                    LOG.exception("engine failed to start; retrying")
                    stopping.wait(2.0)

        threading.Thread(target=start, name="engine-start", daemon=True).start()
        try:
            yield
        finally:
            stopping.set()
            await run_in_threadpool(engine.close)

    routes = [
        Route("/ksql", ksql, methods=["POST"]),
        Route("/query-stream", query_stream, methods=["POST"]),
        Route("/query", legacy_query, methods=["POST"]),
        Route("/close-query", close_query, methods=["POST"]),
        Route("/status", all_statuses, methods=["GET"]),
        Route("/status/{type}/{entity}/{action}", status, methods=["GET"]),
        Route("/info", info, methods=["GET"]),
        Route("/healthcheck", healthcheck, methods=["GET"]),
        Route("/chc/ready", ready, methods=["GET"]),
        Route("/chc/live", live, methods=["GET"]),
    ]
    app = Starlette(routes=routes, middleware=[Middleware(ReadinessGate)], lifespan=lifespan)
    app.state.engine = engine
    return app
