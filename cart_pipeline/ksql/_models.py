"""Typed views of the JSON entities ksqlDB returns.

Parsing is lenient about fields (servers of different versions add/omit some) but
strict about shape: a response that is not a list of ``{"@type": ...}`` objects is a
protocol error, raised by the caller.  Each model keeps ``raw`` so nothing is lost.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "CommandStatus",
    "Entity",
    "FieldInfo",
    "HealthStatus",
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
    "parse_entity",
]

Raw = Mapping[str, Any]


def _str(raw: Raw, key: str, default: str = "") -> str:
    value = raw.get(key)
    return value if isinstance(value, str) else default


def _opt_str(raw: Raw, key: str) -> str | None:
    value = raw.get(key)
    return value if isinstance(value, str) else None


def _dicts(value: Any) -> list[Raw]:
    return [item for item in value if isinstance(item, Mapping)] if isinstance(value, list) else []


def _strs(value: Any) -> tuple[str, ...]:
    return tuple(v for v in value if isinstance(v, str)) if isinstance(value, list) else ()


def _warnings(raw: Raw) -> tuple[str, ...]:
    return tuple(_str(w, "message") for w in _dicts(raw.get("warnings")))


@dataclass(frozen=True, kw_only=True)
class Entity:
    """One element of a ``/ksql`` response; subclasses add typed fields."""

    type: str
    statement_text: str
    warnings: tuple[str, ...] = ()
    raw: Raw = field(default_factory=dict, repr=False, compare=False)


@dataclass(frozen=True, kw_only=True)
class CommandStatus(Entity):
    """``currentStatus``: the outcome of CREATE/DROP/TERMINATE/INSERT ... SELECT."""

    command_id: str
    status: str
    message: str
    query_id: str | None = None
    command_sequence_number: int | None = None


@dataclass(frozen=True, kw_only=True)
class SourceInfo:
    """A stream or table as listed by ``LIST STREAMS``/``LIST TABLES``."""

    name: str
    type: str
    topic: str
    key_format: str
    value_format: str
    is_windowed: bool
    raw: Raw = field(default_factory=dict, repr=False, compare=False)


@dataclass(frozen=True, kw_only=True)
class SourceList(Entity):
    """``streams`` or ``tables`` entity."""

    sources: tuple[SourceInfo, ...]


@dataclass(frozen=True, kw_only=True)
class QueryInfo:
    """A running query as listed by ``LIST QUERIES``."""

    id: str
    query_string: str
    sinks: tuple[str, ...]
    sink_kafka_topics: tuple[str, ...]
    query_type: str | None
    state: str | None
    raw: Raw = field(default_factory=dict, repr=False, compare=False)


@dataclass(frozen=True, kw_only=True)
class QueryList(Entity):
    """``queries`` entity."""

    queries: tuple[QueryInfo, ...]


@dataclass(frozen=True, kw_only=True)
class TopicInfo:
    """A Kafka topic as listed by ``LIST TOPICS``."""

    name: str
    replica_info: tuple[int, ...]
    raw: Raw = field(default_factory=dict, repr=False, compare=False)

    @property
    def partitions(self) -> int:
        return len(self.replica_info)


@dataclass(frozen=True, kw_only=True)
class TopicList(Entity):
    """``kafka_topics`` entity."""

    topics: tuple[TopicInfo, ...]


@dataclass(frozen=True, kw_only=True)
class FieldInfo:
    """A column of a described source; ``kind`` is ``"KEY"``/``"HEADER"``/... or None."""

    name: str
    sql_type: str
    kind: str | None
    raw: Raw = field(default_factory=dict, repr=False, compare=False)

    @property
    def is_key(self) -> bool:
        return self.kind == "KEY"


@dataclass(frozen=True, kw_only=True)
class SourceDescription(Entity):
    """``sourceDescription``: ``DESCRIBE [EXTENDED]`` of one stream or table."""

    name: str
    source_type: str
    topic: str
    key_format: str
    value_format: str
    fields: tuple[FieldInfo, ...]
    read_queries: tuple[str, ...]
    write_queries: tuple[str, ...]
    statement: str
    window_type: str | None
    extended: bool
    partitions: int | None
    replication: int | None


@dataclass(frozen=True, kw_only=True)
class WarningEntity(Entity):
    """``warning_entity``: the statement ran but ksqlDB wants you to know something."""

    message: str


def _schema_type(schema: Any) -> str:
    """Render ksqlDB's nested ``schema`` object as SQL type text (``ARRAY<STRING>``)."""
    if not isinstance(schema, Mapping):
        return "UNKNOWN"
    kind = _str(schema, "type", "UNKNOWN")
    if kind == "ARRAY":
        return f"ARRAY<{_schema_type(schema.get('memberSchema'))}>"
    if kind == "MAP":
        return f"MAP<STRING, {_schema_type(schema.get('memberSchema'))}>"
    if kind == "STRUCT":
        inner = ", ".join(
            f"`{_str(f, 'name')}` {_schema_type(f.get('schema'))}"
            for f in _dicts(schema.get("fields"))
        )
        return f"STRUCT<{inner}>"
    if kind == "DECIMAL":
        params = schema.get("parameters")
        if isinstance(params, Mapping) and "precision" in params and "scale" in params:
            return f"DECIMAL({params['precision']}, {params['scale']})"
    return kind


def _source_info(raw: Raw) -> SourceInfo:
    return SourceInfo(
        name=_str(raw, "name"),
        type=_str(raw, "type"),
        topic=_str(raw, "topic"),
        key_format=_str(raw, "keyFormat"),
        value_format=_str(raw, "valueFormat") or _str(raw, "format"),
        is_windowed=bool(raw.get("isWindowed", False)),
        raw=raw,
    )


def _query_info(raw: Raw) -> QueryInfo:
    return QueryInfo(
        id=_str(raw, "id"),
        query_string=_str(raw, "queryString"),
        sinks=_strs(raw.get("sinks")),
        sink_kafka_topics=_strs(raw.get("sinkKafkaTopics")),
        query_type=_opt_str(raw, "queryType"),
        state=_opt_str(raw, "state"),
        raw=raw,
    )


def _opt_int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _source_description(raw: Raw, base: dict[str, Any]) -> SourceDescription:
    desc = raw.get("sourceDescription")
    desc = desc if isinstance(desc, Mapping) else {}
    fields = tuple(
        FieldInfo(
            name=_str(f, "name"),
            sql_type=_schema_type(f.get("schema")),
            kind=_opt_str(f, "type"),
            raw=f,
        )
        for f in _dicts(desc.get("fields"))
    )
    return SourceDescription(
        **base,
        name=_str(desc, "name"),
        source_type=_str(desc, "type"),
        topic=_str(desc, "topic"),
        key_format=_str(desc, "keyFormat"),
        value_format=_str(desc, "valueFormat") or _str(desc, "format"),
        fields=fields,
        read_queries=tuple(_str(q, "id") for q in _dicts(desc.get("readQueries"))),
        write_queries=tuple(_str(q, "id") for q in _dicts(desc.get("writeQueries"))),
        statement=_str(desc, "statement"),
        window_type=_opt_str(desc, "windowType"),
        extended=bool(desc.get("extended", False)),
        partitions=_opt_int(desc.get("partitions")),
        replication=_opt_int(desc.get("replication")),
    )


def parse_entity(raw: Raw) -> Entity:
    """Build the typed model for one entity; unknown ``@type`` values stay generic."""
    kind = _str(raw, "@type")
    base: dict[str, Any] = {
        "type": kind,
        "statement_text": _str(raw, "statementText"),
        "warnings": _warnings(raw),
        "raw": raw,
    }
    if kind == "currentStatus":
        status = raw.get("commandStatus")
        status = status if isinstance(status, Mapping) else {}
        return CommandStatus(
            **base,
            command_id=_str(raw, "commandId"),
            status=_str(status, "status"),
            message=_str(status, "message"),
            query_id=_opt_str(status, "queryId"),
            command_sequence_number=_opt_int(raw.get("commandSequenceNumber")),
        )
    if kind in ("streams", "tables"):
        return SourceList(**base, sources=tuple(map(_source_info, _dicts(raw.get(kind)))))
    if kind == "queries":
        return QueryList(**base, queries=tuple(map(_query_info, _dicts(raw.get("queries")))))
    if kind in ("kafka_topics", "kafka_topics_extended"):
        topics = tuple(
            TopicInfo(
                name=_str(t, "name"),
                replica_info=tuple(r for r in t.get("replicaInfo") or [] if isinstance(r, int)),
                raw=t,
            )
            for t in _dicts(raw.get("topics"))
        )
        return TopicList(**base, topics=topics)
    if kind == "sourceDescription":
        return _source_description(raw, base)
    if kind == "warning_entity":
        return WarningEntity(**base, message=_str(raw, "message"))
    return Entity(**base)


@dataclass(frozen=True, kw_only=True)
class QueryResult:
    """Rows of a pull query from ``/query-stream`` plus the header that described them."""

    query_id: str | None
    column_names: tuple[str, ...]
    column_types: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...]

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        return iter(self.rows)

    def __len__(self) -> int:
        return len(self.rows)

    def dicts(self) -> list[dict[str, Any]]:
        """Rows as ``{column: value}`` (column names exactly as ksqlDB reported them)."""
        return [dict(zip(self.column_names, row, strict=False)) for row in self.rows]


@dataclass(frozen=True, kw_only=True)
class ServerInfo:
    """``GET /info``."""

    version: str
    kafka_cluster_id: str
    ksql_service_id: str
    server_status: str | None
    raw: Raw = field(default_factory=dict, repr=False, compare=False)


@dataclass(frozen=True, kw_only=True)
class HealthStatus:
    """``GET /healthcheck``: overall flag plus each subsystem's flag."""

    is_healthy: bool
    details: Mapping[str, bool]
    raw: Raw = field(default_factory=dict, repr=False, compare=False)


def parse_server_info(raw: Raw) -> ServerInfo:
    info = raw.get("KsqlServerInfo")
    info = info if isinstance(info, Mapping) else {}
    return ServerInfo(
        version=_str(info, "version"),
        kafka_cluster_id=_str(info, "kafkaClusterId"),
        ksql_service_id=_str(info, "ksqlServiceId"),
        server_status=_opt_str(info, "serverStatus"),
        raw=raw,
    )


def parse_health(raw: Raw) -> HealthStatus:
    details_raw = raw.get("details")
    details: dict[str, bool] = {}
    if isinstance(details_raw, Mapping):
        for name, value in details_raw.items():
            if isinstance(value, Mapping):
                details[str(name)] = bool(value.get("isHealthy", False))
    return HealthStatus(is_healthy=bool(raw.get("isHealthy", False)), details=details, raw=raw)


def header_columns(header: Raw) -> tuple[str | None, tuple[str, ...], tuple[str, ...]]:
    """``(queryId, columnNames, columnTypes)`` from a ``/query-stream`` header object."""
    query_id = header.get("queryId")
    names: Sequence[Any] = header.get("columnNames") or ()
    types: Sequence[Any] = header.get("columnTypes") or ()
    return (
        query_id if isinstance(query_id, str) else None,
        tuple(str(n) for n in names),
        tuple(str(t) for t in types),
    )
