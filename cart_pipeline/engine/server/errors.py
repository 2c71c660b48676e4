"""ksqlDB's JSON error entities and their HTTP statuses (status = error_code // 100)."""

from __future__ import annotations

from starlette.responses import Response

from cart_pipeline.engine.errors import KsqlError, KsqlStatementError
from cart_pipeline.engine.server.json import JSON_MEDIA_TYPE, dumps


def error_body(exc: KsqlError) -> dict[str, object]:
    if isinstance(exc, KsqlStatementError):
        return {
            "@type": "statement_error",
            "error_code": exc.error_code,
            "message": exc.message,
            "statementText": exc.statement_text or "",
            "entities": exc.entities,
        }
    return {"@type": "generic_error", "error_code": exc.error_code, "message": exc.message}


def error_response(exc: KsqlError, media_type: str = JSON_MEDIA_TYPE) -> Response:
    return Response(
        dumps(error_body(exc)), status_code=exc.error_code // 100, media_type=media_type
    )
