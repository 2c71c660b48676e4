"""Exceptions raised by the ksqlDB client.

One tree, so callers can catch as broadly or as narrowly as they need::

    KsqlError
     ├── KsqlConfigError         bad client settings (env vars, URL, credentials pairing)
     ├── KsqlRenderError         a Python value that cannot be rendered as ksqlDB SQL
     ├── KsqlTransportError      cannot reach the server / TLS / connection dropped
     │    └── KsqlTimeout        connect/read timed out, or a readiness wait ran out
     ├── KsqlServerError         ksqlDB answered with an error entity
     │    ├── KsqlStatementError the statement was rejected (@type statement_error, 40001, ...)
     │    ├── KsqlAuthError      401/403: missing or wrong API key/secret, or no permission
     │    └── KsqlNotReady       503 / 50302: the server is starting (retried, bounded)
     └── KsqlProtocolError       a response that is not what ksqlDB sends

Every error names the request (method + path, URL without credentials) so that a
log line alone says which call failed.  Credentials never appear in ``str()`` or
``repr()`` of an error.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = [
    "KsqlAuthError",
    "KsqlConfigError",
    "KsqlError",
    "KsqlNotReady",
    "KsqlProtocolError",
    "KsqlRenderError",
    "KsqlServerError",
    "KsqlStatementError",
    "KsqlTimeout",
    "KsqlTransportError",
]

_MAX_STATEMENT_IN_MESSAGE = 160


def one_line(text: str, limit: int | None = None) -> str:
    """Collapse whitespace runs (ksqlDB messages are multi-line) so logs stay greppable."""
    flat = " ".join(text.split())
    if limit is not None and len(flat) > limit:
        flat = flat[: limit - 1] + "…"
    return flat


class KsqlError(Exception):
    """Base class of every error raised by :mod:`cart_pipeline.ksql`."""


class KsqlConfigError(KsqlError, ValueError):
    """Client settings are unusable (raised before any request is sent)."""


class KsqlRenderError(KsqlError, ValueError):
    """A value cannot be rendered safely as a ksqlDB SQL literal or identifier."""


class _RequestError(KsqlError):
    """Shared plumbing: an error tied to one HTTP request."""

    def __init__(self, message: str, *, method: str, url: str) -> None:
        super().__init__(message)
        self.message = message
        self.method = method
        self.url = url

    @property
    def request(self) -> str:
        """``"METHOD url"`` of the failed request (never includes credentials)."""
        return f"{self.method} {self.url}"


class KsqlTransportError(_RequestError):
    """The request did not get an HTTP answer: refused, reset, TLS failure, DNS..."""

    def __init__(
        self, message: str, *, method: str, url: str, cause: BaseException | None = None
    ) -> None:
        super().__init__(message, method=method, url=url)
        self.cause = cause

    def __str__(self) -> str:
        return f"{self.method} {self.url} failed: {one_line(self.message)}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}(method={self.method!r}, url={self.url!r})"


class KsqlTimeout(KsqlTransportError):
    """A connect/read timeout, or :meth:`KsqlClient.wait_until_ready` ran out of time."""


class KsqlServerError(_RequestError):
    """ksqlDB answered with an error entity (``{"@type": ..., "error_code": ...}``)."""

    def __init__(
        self,
        message: str,
        *,
        method: str,
        url: str,
        http_status: int,
        error_code: int | None = None,
        error_type: str | None = None,
        statement_text: str | None = None,
        entities: Sequence[Mapping[str, Any]] = (),
        raw: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message, method=method, url=url)
        self.http_status = http_status
        self.error_code = error_code
        self.error_type = error_type
        self.statement_text = statement_text
        #: Entities of statements that succeeded before the failing one (multi-statement).
        self.entities = list(entities)
        self.raw = dict(raw) if raw is not None else {}

    def __str__(self) -> str:
        code = f" {self.error_code}" if self.error_code is not None else ""
        kind = f" {self.error_type}" if self.error_type else ""
        text = f"{self.method} {self.url} -> HTTP {self.http_status}{kind}{code}: "
        text += one_line(self.message) or "(no message)"
        if self.statement_text:
            stmt = one_line(self.statement_text, _MAX_STATEMENT_IN_MESSAGE)
            text += f" [statement: {stmt}]"
        return text

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(http_status={self.http_status}, "
            f"error_code={self.error_code!r}, message={one_line(self.message, 200)!r})"
        )


class KsqlStatementError(KsqlServerError):
    """The statement was rejected: syntax error, unknown source, bad property, ..."""


class KsqlAuthError(KsqlServerError):
    """401/403: credentials missing, wrong, or lacking permission."""


class KsqlNotReady(KsqlServerError):
    """503 (e.g. error_code 50302): the server is up but not yet serving statements."""


class KsqlProtocolError(_RequestError):
    """The server answered something ksqlDB never sends (not JSON, wrong shape, ...)."""

    def __init__(
        self,
        message: str,
        *,
        method: str,
        url: str,
        http_status: int | None = None,
        body_excerpt: str = "",
    ) -> None:
        super().__init__(message, method=method, url=url)
        self.http_status = http_status
        self.body_excerpt = body_excerpt

    def __str__(self) -> str:
        status = f" (HTTP {self.http_status})" if self.http_status is not None else ""
        text = f"{self.method} {self.url}{status}: unexpected response: {one_line(self.message)}"
        if self.body_excerpt:
            text += f"; body starts {one_line(self.body_excerpt, 120)!r}"
        return text
