"""JSON encoding for responses (orjson; floats keep a decimal point like Jackson)."""

from __future__ import annotations

import orjson

JSON_MEDIA_TYPE = "application/json"
KSQL_MEDIA_TYPE = "application/vnd.ksql.v1+json"
DELIMITED_MEDIA_TYPE = "application/vnd.ksqlapi.delimited.v1"


def dumps(obj: object) -> bytes:
    return orjson.dumps(obj)


def response_media_type(accept: str | None) -> str:
    """ksqlDB answers in the versioned type when the client asks for it."""
    if accept and KSQL_MEDIA_TYPE in accept:
        return KSQL_MEDIA_TYPE
    return JSON_MEDIA_TYPE
