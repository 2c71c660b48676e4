"""ksqlDB's error vocabulary: every refusal the engine makes is one of these.

The REST layer turns them into ksqlDB's JSON error entities; nothing else in the
engine builds error responses, so the shapes stay in one place.
"""

from __future__ import annotations

# ksqlDB's error codes (io.confluent.ksql.rest.Errors); HTTP status = code // 100.
BAD_STATEMENT = 40001
QUERY_ENDPOINT = 40002
BAD_REQUEST = 40000
NOT_FOUND = 40400
SERVER_ERROR = 50000
COMMAND_QUEUE_CATCHUP_TIMEOUT = 50301
SERVER_NOT_READY = 50302

QUERY_ENDPOINT_MESSAGE = (
    "The following statement types should be issued to the websocket endpoint '/query':\n"
    "\t* PRINT\n"
    "\t* SELECT"
)


class KsqlError(Exception):
    """A refusal answered as ksqlDB's `generic_error` entity."""

    def __init__(self, message: str, error_code: int = BAD_REQUEST) -> None:
        super().__init__(message)
        self.message = message
        self.error_code = error_code


class KsqlStatementError(KsqlError):
    """A statement ksqlDB would refuse: answered as a `statement_error` entity.

    `statement_text` may be filled in later by the request handler, which knows the
    text of the statement being run.
    """

    def __init__(
        self,
        message: str,
        statement_text: str | None = None,
        error_code: int = BAD_STATEMENT,
        entities: list[dict[str, object]] | None = None,
    ) -> None:
        super().__init__(message, error_code)
        self.statement_text = statement_text
        self.entities = entities or []


def unsupported(feature: str) -> KsqlStatementError:
    """The one way to refuse what ksqlDB supports but this engine does not (yet)."""
    return KsqlStatementError(f"Unsupported by the embedded engine: {feature}")
