"""HTTP plumbing: one place that turns httpx outcomes into the KsqlError tree.

Kept apart from the client so every endpoint maps transport failures, error
entities and junk responses identically, whichever server (embedded engine,
Confluent Platform, Confluent Cloud) is on the other end.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx
import orjson

from ._errors import (
    KsqlAuthError,
    KsqlConfigError,
    KsqlError,
    KsqlNotReady,
    KsqlProtocolError,
    KsqlServerError,
    KsqlStatementError,
    KsqlTimeout,
    KsqlTransportError,
)

KSQL_V1_JSON = "application/vnd.ksql.v1+json"
DELIMITED_V1 = "application/vnd.ksqlapi.delimited.v1"

# ksqlDB's Errors.java codes that mean "wait and try again": server not ready /
# command queue catching up. Any HTTP 503 counts too.
_NOT_READY_CODES = frozenset({50301, 50302})
_AUTH_CODES = frozenset({40100, 40300, 40301})
_STATEMENT_CODES = frozenset({40000, 40001, 40002})


def split_credentials(url: str) -> tuple[str, str | None, str | None]:
    """Validate ``url``; return it without userinfo, plus any user/password it held.

    Credentials embedded in the URL would otherwise leak into every error message.
    """
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError) as exc:
        raise KsqlConfigError(f"invalid ksqlDB URL: {exc}") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise KsqlConfigError(
            "ksqlDB URL must look like http(s)://host[:port], got scheme "
            f"{parsed.scheme!r} and host {parsed.host!r}"
        )
    user = parsed.username or None
    password = parsed.password or None
    clean = parsed.copy_with(username=None, password=None, query=None, fragment=None)
    return str(clean).rstrip("/"), user, password


def ssl_verify(verify: bool | str | Path | ssl.SSLContext) -> bool | ssl.SSLContext:
    """httpx 0.28 wants an SSLContext for a custom CA bundle (a str path is deprecated)."""
    if isinstance(verify, bool | ssl.SSLContext):
        return verify
    path = Path(verify)
    if not path.exists():
        raise KsqlConfigError(f"CA bundle {str(path)!r} does not exist")
    try:
        if path.is_dir():
            return ssl.create_default_context(capath=str(path))
        return ssl.create_default_context(cafile=str(path))
    except (ssl.SSLError, OSError) as exc:
        raise KsqlConfigError(f"cannot load CA bundle {str(path)!r}: {exc}") from None


def _caused_by_tls(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    for _ in range(5):  # httpx -> httpcore -> ssl: a short chain
        if seen is None:
            return False
        if isinstance(seen, ssl.SSLError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def transport_error(exc: httpx.HTTPError, method: str, url: str) -> KsqlTransportError:
    """Map an httpx exception; timeouts get their own class so callers can retry them."""
    detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    if isinstance(exc, httpx.TimeoutException):
        return KsqlTimeout(f"timed out ({detail})", method=method, url=url, cause=exc)
    if _caused_by_tls(exc):
        return KsqlTransportError(
            f"TLS handshake failed ({detail}); check CART_KSQLDB_VERIFY / the CA bundle",
            method=method,
            url=url,
            cause=exc,
        )
    if isinstance(exc, httpx.ConnectError):
        return KsqlTransportError(
            f"cannot connect ({detail}); is ksqlDB running at this address?",
            method=method,
            url=url,
            cause=exc,
        )
    return KsqlTransportError(detail, method=method, url=url, cause=exc)


def _classify(status: int, code: int | None, kind: str | None) -> type[KsqlServerError]:
    if status in (401, 403) or code in _AUTH_CODES:
        return KsqlAuthError
    if status == 503 or code in _NOT_READY_CODES:
        return KsqlNotReady
    if kind == "statement_error" or code in _STATEMENT_CODES or status == 400:
        return KsqlStatementError
    return KsqlServerError


def is_error_object(payload: Any) -> bool:
    """ksqlDB error entities carry ``error_code`` (``@type`` is *_error)."""
    if not isinstance(payload, Mapping):
        return False
    kind = payload.get("@type")
    return "error_code" in payload or (isinstance(kind, str) and kind.endswith("_error"))


def server_error(
    payload: Mapping[str, Any], *, status: int, method: str, url: str, statement: str | None
) -> KsqlServerError:
    """Build the typed error for an error entity; falls back to the statement we sent."""
    raw_code = payload.get("error_code")
    code = raw_code if isinstance(raw_code, int) and not isinstance(raw_code, bool) else None
    kind = payload.get("@type") if isinstance(payload.get("@type"), str) else None
    message = payload.get("message")
    stmt = payload.get("statementText")
    entities = payload.get("entities")
    cls = _classify(status, code, kind)
    return cls(
        message if isinstance(message, str) else "",
        method=method,
        url=url,
        http_status=status,
        error_code=code,
        error_type=kind,
        statement_text=stmt if isinstance(stmt, str) and stmt else statement,
        entities=[e for e in entities if isinstance(e, Mapping)]
        if isinstance(entities, list)
        else (),
        raw=payload,
    )


def error_from_response(
    status: int, body: bytes, *, method: str, url: str, statement: str | None
) -> KsqlError:
    """The error for a non-2xx response, whether or not its body is ksqlDB JSON."""
    try:
        payload = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        payload = None
    if is_error_object(payload):
        assert isinstance(payload, Mapping)
        return server_error(payload, status=status, method=method, url=url, statement=statement)
    if status in (401, 403):
        return KsqlAuthError(
            "authentication failed: check the API key/secret (username/password)",
            method=method,
            url=url,
            http_status=status,
            statement_text=statement,
        )
    if status == 503:
        return KsqlNotReady(
            "service unavailable",
            method=method,
            url=url,
            http_status=status,
            statement_text=statement,
        )
    return KsqlProtocolError(
        f"HTTP {status} without a ksqlDB error entity",
        method=method,
        url=url,
        http_status=status,
        body_excerpt=body[:200].decode("utf-8", "replace"),
    )


def decode_json(body: bytes, *, status: int, method: str, url: str) -> Any:
    """Parse a 2xx body; junk is a protocol error, not a crash in the caller."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise KsqlProtocolError(
            f"body is not JSON ({exc})",
            method=method,
            url=url,
            http_status=status,
            body_excerpt=body[:200].decode("utf-8", "replace"),
        ) from None
