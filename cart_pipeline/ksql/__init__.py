"""ksqlDB REST client for the cart pipeline.

Works unchanged against the embedded engine, Confluent Platform's ksqlDB server and
Confluent Cloud (HTTPS + API key/secret as basic auth)::

    from cart_pipeline.ksql import KsqlClient, quote_identifier

    with KsqlClient.from_env() as ksql:
        ksql.wait_until_ready(60)
        ksql.execute("CREATE STREAM ...;")
        ksql.insert_values("CART_EVENTS", {"CART_ID": "c1", "QTY": 2})
        rows = ksql.query("SELECT * FROM CART_EVENTS;").dicts()

Errors form one tree rooted at :class:`KsqlError`; see ``_errors.py``.
"""

from ._client import KsqlClient
from ._errors import (
    KsqlAuthError,
    KsqlConfigError,
    KsqlError,
    KsqlNotReady,
    KsqlProtocolError,
    KsqlRenderError,
    KsqlServerError,
    KsqlStatementError,
    KsqlTimeout,
    KsqlTransportError,
)
from ._models import (
    CommandStatus,
    Entity,
    FieldInfo,
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
    WarningEntity,
)
from ._streaming import PushQuery
from .sql import quote_identifier, quote_literal, render_insert_values

__all__ = [
    "CommandStatus",
    "Entity",
    "FieldInfo",
    "HealthStatus",
    "KsqlAuthError",
    "KsqlClient",
    "KsqlConfigError",
    "KsqlError",
    "KsqlNotReady",
    "KsqlProtocolError",
    "KsqlRenderError",
    "KsqlServerError",
    "KsqlStatementError",
    "KsqlTimeout",
    "KsqlTransportError",
    "PushQuery",
    "QueryInfo",
    "QueryList",
    "QueryResult",
    "ServerInfo",
    "SourceDescription",
    "SourceInfo",
    "SourceList",
    "TopicInfo",
    "TopicList",
    "WarningEntity",
    "quote_identifier",
    "quote_literal",
    "render_insert_values",
]
