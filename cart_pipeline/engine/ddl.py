"""Catalog-changing statements: CREATE, CREATE TABLE AS SELECT, DROP, TERMINATE.

Each handler runs in two modes over the same code, so validation cannot drift from
execution: `ctx.dry_run` (validate against the sandbox catalog, no side effects) and
for real (create topics, start/stop queries). The caller writes the command topic.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from cart_pipeline.engine import insert_select, kafka, source_table
from cart_pipeline.engine.catalog.model import Catalog, Column, DataSource, QueryInfo
from cart_pipeline.engine.errors import KsqlStatementError, unsupported
from cart_pipeline.engine.runtime.planner import (
    AggregatePlan,
    ProjectionPlan,
    plan_aggregate,
    plan_projection,
)
from cart_pipeline.engine.runtime.serde import check_format, key_serde, value_serde
from cart_pipeline.engine.runtime.stream_planner import StreamPlan, plan_stream
from cart_pipeline.engine.runtime.wrapping import CONFIG as WRAP_CONFIG
from cart_pipeline.engine.runtime.wrapping import parse_flag, value_features
from cart_pipeline.engine.sql import ast
from cart_pipeline.engine.statement_text import format_create_as_select
from cart_pipeline.engine.types import SqlType, check_supported

if TYPE_CHECKING:
    from cart_pipeline.engine.engine import Engine

SOURCE_PROPERTIES = frozenset(
    {
        "KAFKA_TOPIC",
        "VALUE_FORMAT",
        "KEY_FORMAT",
        "FORMAT",
        "PARTITIONS",
        "REPLICAS",
        "WRAP_SINGLE_VALUE",
    }
)
KNOWN_PROPERTIES = SOURCE_PROPERTIES | frozenset(
    {
        "TIMESTAMP",
        "TIMESTAMP_FORMAT",
        "WRAP_SINGLE_VALUE",
        "VALUE_DELIMITER",
        "KEY_DELIMITER",
        "KEY_SCHEMA_ID",
        "VALUE_SCHEMA_ID",
        "KEY_SCHEMA_FULL_NAME",
        "VALUE_SCHEMA_FULL_NAME",
        "VALUE_AVRO_SCHEMA_FULL_NAME",
        "RETENTION_MS",
        "WINDOW_TYPE",
        "WINDOW_SIZE",
        "SOURCE_CONNECTOR",
    }
)


@dataclass
class Context:
    engine: Engine
    catalog: Catalog
    dry_run: bool
    replay: bool = False
    properties: dict[str, str] = field(default_factory=dict)
    seq: int = 0  # command sequence number of the statement being run


def convert_type(t: ast.SqlType) -> SqlType:
    match t:
        case ast.PrimitiveType(name=name):
            return SqlType(name)
        case ast.DecimalType(precision=p, scale=s):
            return SqlType("DECIMAL", (p, s))
        case ast.ArrayType(element=e):
            return SqlType("ARRAY", children=(convert_type(e),))
        case ast.MapType(key=k, value=v):
            return SqlType("MAP", children=(convert_type(k), convert_type(v)))
        case ast.StructType(fields=fields):
            return SqlType(
                "STRUCT",
                children=tuple(convert_type(f.type) for f in fields),
                field_names=tuple(f.name for f in fields),
            )
        case _:
            raise unsupported("custom types (CREATE TYPE)")


def with_clause(props: tuple[ast.Property, ...]) -> dict[str, object]:
    out: dict[str, object] = {}
    for p in props:
        name = p.name.upper()
        if name not in KNOWN_PROPERTIES:
            raise KsqlStatementError(f"Invalid config variable(s) in the WITH clause: {name}")
        if name not in SOURCE_PROPERTIES:
            raise unsupported(f"WITH property {name}")
        value = getattr(p.value, "value", None)
        out[name] = value
    return out


def _formats(
    props: dict[str, object], default_key: str | None, default_value: str | None
) -> tuple[str, str]:
    fmt = props.get("FORMAT")
    if fmt is not None and "VALUE_FORMAT" in props:
        raise KsqlStatementError(
            "Cannot supply both 'VALUE_FORMAT' and 'FORMAT' properties, as 'FORMAT' sets both "
            "key and value formats. Either use just 'FORMAT', or use 'KEY_FORMAT' and "
            "'VALUE_FORMAT'."
        )
    if fmt is not None and "KEY_FORMAT" in props:
        raise KsqlStatementError(
            "Cannot supply both 'KEY_FORMAT' and 'FORMAT' properties, as 'FORMAT' sets both "
            "key and value formats. Either use just 'FORMAT', or use 'KEY_FORMAT' and "
            "'VALUE_FORMAT'."
        )
    value = props.get("VALUE_FORMAT", fmt) or default_value
    if value is None:
        raise KsqlStatementError(
            "Statement is missing the 'VALUE_FORMAT' property from the WITH clause. Either "
            "provide one or set a default via the 'ksql.persistence.default.format.value' config."
        )
    key = props.get("KEY_FORMAT", fmt) or default_key or "KAFKA"
    return check_format(str(key)), check_format(str(value))


def _exists_error(kind: str, name: str, existing: DataSource) -> KsqlStatementError:
    return KsqlStatementError(
        f"Cannot add {kind.lower()} '{name}': A {existing.kind.lower()} with the same name "
        "already exists"
    )


def _warning(text: str, kind: str, name: str) -> dict[str, object]:
    return {
        "@type": "warning_entity",
        "statementText": text,
        "message": f"Cannot add {kind.lower()} `{name}`: A {kind.lower()} with the same name "
        "already exists.",
        "warnings": [],
    }


def _columns(stmt: ast.CreateSource) -> tuple[Column, ...]:
    keys: list[Column] = []
    values: list[Column] = []
    seen: set[str] = set()
    for el in stmt.elements:
        if el.name in seen:
            raise KsqlStatementError(f"Duplicate column names:\n\t{el.name}")
        seen.add(el.name)
        if el.constraint in ("HEADERS", "HEADER"):
            raise unsupported("HEADER columns")
        sql_type = convert_type(el.type)
        check_supported(sql_type, el.name)
        if el.constraint == "PRIMARY KEY" and stmt.kind == "STREAM":
            raise KsqlStatementError(
                f"Column `{el.name}` is a 'PRIMARY KEY' column: please use 'KEY' for streams.\n"
                "Tables have PRIMARY KEYs, which are unique and NON NULL.\n"
                "Streams have KEYs, which have no uniqueness or NULL constraints."
            )
        if el.constraint == "KEY" and stmt.kind == "TABLE":
            raise KsqlStatementError(
                f"Column `{el.name}` is a 'KEY' column: please use 'PRIMARY KEY' for tables.\n"
                "Tables have PRIMARY KEYs, which are unique and NON NULL.\n"
                "Streams have KEYs, which have no uniqueness or NULL constraints."
            )
        if el.name in ("ROWTIME", "ROWPARTITION", "ROWOFFSET", "WINDOWSTART", "WINDOWEND"):
            raise KsqlStatementError(f"'{el.name}' is a reserved column name.")
        (keys if el.constraint else values).append(Column(el.name, sql_type, bool(el.constraint)))
    if stmt.kind == "TABLE" and not keys:
        raise KsqlStatementError("Tables require a PRIMARY KEY. Please define the PRIMARY KEY.")
    return tuple(keys + values)


def _status(
    ctx: Context, text: str, command_id: str, message: str, query_id: str | None = None
) -> dict[str, object]:
    return {
        "@type": "currentStatus",
        "statementText": text,
        "commandId": command_id,
        "commandStatus": {"status": "SUCCESS", "message": message, "queryId": query_id},
        "commandSequenceNumber": ctx.seq,
        "warnings": [],
    }


def _missing_topic(stmt: ast.CreateSource, topic: str, props: dict[str, object]) -> str:
    cols = ", ".join(
        f"{e.name} {convert_type(e.type)}{' ' + e.constraint if e.constraint else ''}"
        for e in stmt.elements
    )
    rest = ", ".join(
        f"{k}='{v}'" if isinstance(v, str) else f"{k}={_sql_value(v)}"
        for k, v in props.items()
        if k not in ("KAFKA_TOPIC", "PARTITIONS")
    )
    example = (
        f"CREATE {stmt.kind} {stmt.name} ({cols}) WITH (KAFKA_TOPIC='{topic}', PARTITIONS=2"
        f"{', ' + rest if rest else ''});"
    )
    return (
        f"Topic '{topic}' does not exist. If you want to create a new topic for the "
        "stream/table please re-run the statement providing the required 'PARTITIONS' "
        "configuration in the WITH clause (and optionally 'REPLICAS'). For example: " + example
    )


def _sql_value(value: object) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def create_source(ctx: Context, stmt: ast.CreateSource, text: str) -> dict[str, object]:
    existing = ctx.catalog.source(stmt.name)
    if existing is not None:
        if stmt.if_not_exists:
            return _warning(text, stmt.kind, stmt.name)
        if not stmt.or_replace:
            raise _exists_error(stmt.kind, stmt.name, existing)
        if stmt.is_source or existing.is_source:
            kind = stmt.kind.lower()
            raise KsqlStatementError(
                f"Cannot add {kind} '{stmt.name}': CREATE OR REPLACE is not supported on "
                f"source {kind}s."
            )
        raise unsupported("CREATE OR REPLACE of an existing source")
    props = with_clause(stmt.properties)
    topic = props.get("KAFKA_TOPIC")
    if topic is None:
        raise KsqlStatementError(
            'Missing required property "KAFKA_TOPIC" which has no default value.'
        )
    topic = str(topic)
    columns = _columns(stmt)
    key_fmt, value_fmt = _formats(
        props,
        ctx.properties.get("ksql.persistence.default.format.key"),
        ctx.properties.get("ksql.persistence.default.format.value"),
    )
    keys = tuple(c for c in columns if c.key)
    vals = tuple(c for c in columns if not c.key)
    features = _value_features(ctx, props, value_fmt, vals)
    key_serde(key_fmt, keys)
    value_serde(value_fmt, vals, features)
    admin = ctx.engine.admin
    partitions = kafka.topic_partitions(admin, topic)
    wanted = props.get("PARTITIONS")
    replicas = int(props.get("REPLICAS") or 1)  # type: ignore[call-overload]
    if partitions is None and wanted is None and not ctx.replay:
        # Created a moment ago by someone else? The metadata may lag: re-check, bounded.
        partitions = kafka.settled_topic_partitions(admin, topic)
    if partitions is None:
        if wanted is None:
            raise KsqlStatementError(_missing_topic(stmt, topic, props))
        partitions = int(wanted)  # type: ignore[call-overload]
        if not ctx.dry_run:
            kafka.ensure_topic(admin, topic, partitions, replicas)
    elif wanted is not None and int(wanted) != partitions:  # type: ignore[call-overload]
        raise KsqlStatementError(
            f"A Kafka topic with the name '{topic}' already exists, with different "
            f"partition/replica configuration than required. KSQL expects {wanted} partitions "
            f"(topic has {partitions}), and {replicas} replication factor (topic has "
            f"{kafka.topic_replicas(admin, topic)})."
        )
    ctx.catalog.sources[stmt.name] = DataSource(
        name=stmt.name,
        kind=stmt.kind,
        columns=columns,
        topic=topic,
        key_format=key_fmt,
        value_format=value_fmt,
        statement=text,
        partitions=partitions,
        replicas=replicas,
        value_features=features,
        is_source=stmt.is_source,
    )
    if stmt.is_source and stmt.kind == "TABLE":
        query_id = source_table.materialize(ctx, ctx.catalog.sources[stmt.name], text)
        return _status(
            ctx, text, f"table/`{stmt.name}`/create", f"Created query with ID {query_id}", query_id
        )
    what = "Stream" if stmt.kind == "STREAM" else "Table"
    return _status(ctx, text, f"{stmt.kind.lower()}/`{stmt.name}`/create", f"{what} created")


def create_as_select(ctx: Context, stmt: ast.CreateAsSelect, text: str) -> dict[str, object]:
    existing = ctx.catalog.source(stmt.name)
    if existing is not None:
        if stmt.if_not_exists:
            return _warning(text, stmt.kind, stmt.name)
        if not stmt.or_replace:
            raise _exists_error(stmt.kind, stmt.name, existing)
        raise unsupported("CREATE OR REPLACE of an existing table")
    plan: AggregatePlan | ProjectionPlan | StreamPlan
    if stmt.kind == "STREAM":
        plan = plan_stream(ctx.catalog, stmt.query, stmt.name)
    elif stmt.query.group_by is None and not _has_aggregate(stmt.query):
        plan = plan_projection(ctx.catalog, stmt.query, stmt.name)
    else:
        plan, _ = plan_aggregate(ctx.catalog, stmt.query, stmt.name)
    source = plan.source
    props = with_clause(stmt.properties)
    key_fmt, value_fmt = _formats(props, source.key_format, source.value_format)
    if isinstance(plan, AggregatePlan) and source.value_format == "KAFKA":
        raise KsqlStatementError(
            f"Source(s) {source.name} are using the 'KAFKA' value format. This format does not "
            "yet support GROUP BY."
        )
    sink_keys = tuple(c for c in plan.sink_columns if c.key)
    sink_values = tuple(c for c in plan.sink_columns if not c.key)
    features = _value_features(ctx, props, value_fmt, sink_values)
    try:
        key_serde(key_fmt, sink_keys)
        value_serde(value_fmt, sink_values, features)
    except KsqlStatementError as exc:
        quoted = format_create_as_select(stmt) or text
        raise KsqlStatementError(f"{exc.message}\nStatement: {quoted}") from exc
    prefix = ctx.properties.get("ksql.output.topic.name.prefix", "")
    topic = str(props.get("KAFKA_TOPIC") or prefix + stmt.name)
    partitions = int(props.get("PARTITIONS") or source.partitions)  # type: ignore[call-overload]
    replicas = int(props.get("REPLICAS") or source.replicas)  # type: ignore[call-overload]
    query_id = f"{'CSAS' if stmt.kind == 'STREAM' else 'CTAS'}_{stmt.name}_{ctx.seq}"
    sink = DataSource(
        name=stmt.name,
        kind=stmt.kind,
        columns=plan.sink_columns,
        topic=topic,
        key_format=key_fmt,
        value_format=value_fmt,
        statement=text,
        partitions=partitions,
        replicas=replicas,
        writer_query=query_id,
        value_features=features,
    )
    existing_partitions = kafka.topic_partitions(ctx.engine.admin, topic)
    if existing_partitions is not None and existing_partitions != partitions:
        raise KsqlStatementError(
            f"A Kafka topic with the name '{topic}' already exists, with different "
            f"partition/replica configuration than required. KSQL expects {partitions} "
            f"partitions (topic has {existing_partitions}), and {replicas} replication factor "
            f"(topic has {kafka.topic_replicas(ctx.engine.admin, topic)})."
        )
    ctx.catalog.sources[stmt.name] = sink
    ctx.catalog.queries[query_id] = QueryInfo(query_id, text, stmt.name, topic, (source.name,))
    source.readers.add(query_id)
    if not ctx.dry_run:
        kafka.ensure_topic(ctx.engine.admin, topic, partitions, replicas)
        ctx.engine.register_query(query_id, plan, sink, dict(ctx.properties), start=not ctx.replay)
    return _status(
        ctx,
        text,
        f"{stmt.kind.lower()}/`{stmt.name}`/create",
        f"Created query with ID {query_id}",
        query_id,
    )


def _value_features(
    ctx: Context, props: dict[str, object], value_fmt: str, values: tuple[Column, ...]
) -> tuple[str, ...]:
    """The value's wrapping feature: WRAP_SINGLE_VALUE, else the session's config."""
    explicit = props.get("WRAP_SINGLE_VALUE")
    flag = None if explicit is None else parse_flag(explicit)
    return value_features(value_fmt, values, flag, ctx.properties.get(WRAP_CONFIG))


def _has_aggregate(query: ast.Query) -> bool:
    from cart_pipeline.engine.runtime import aggregates
    from cart_pipeline.engine.runtime.expressions import contains_aggregate

    return any(
        isinstance(i, ast.SelectColumn)
        and contains_aggregate(i.expression, aggregates.is_aggregate)
        for i in query.select
    )


def drop_source(ctx: Context, stmt: ast.DropSource, text: str) -> dict[str, object]:
    source = ctx.catalog.source(stmt.name)
    command_id = f"{stmt.kind.lower()}/`{stmt.name}`/drop"
    if source is None:
        if stmt.if_exists:
            return _status(ctx, text, command_id, f"Source `{stmt.name}` does not exist.")
        what = "Stream" if stmt.kind == "STREAM" else "Table"
        raise KsqlStatementError(f"{what} {stmt.name} does not exist.")
    if source.is_source and stmt.delete_topic:  # ksqlDB's DeleteTopicInjector, checked first
        raise KsqlStatementError(f"Cannot delete topic for read-only source: {stmt.name}")
    if source.kind != stmt.kind:
        raise KsqlStatementError(
            f"Incompatible data source type is {source.kind}, but statement was DROP {stmt.kind}"
        )
    if not ctx.replay:
        insert_select.check_drop(ctx.catalog, source)
    readers = sorted(q for q in source.readers if q in ctx.catalog.queries)
    if readers:
        writers = [source.writer_query] if source.writer_query in ctx.catalog.queries else []
        raise KsqlStatementError(
            f"Cannot drop {stmt.name}.\nThe following queries read from this source: "
            f"[{', '.join(readers)}].\nThe following queries write into this source: "
            f"[{', '.join(w for w in writers if w)}].\nYou need to terminate them before "
            f"dropping {stmt.name}."
        )
    if source.writer_query and source.writer_query in ctx.catalog.queries:
        _terminate(ctx, source.writer_query)
    del ctx.catalog.sources[stmt.name]
    if stmt.delete_topic and not ctx.dry_run:
        kafka.delete_topics(ctx.engine.admin, [source.topic])
    return _status(
        ctx, text, command_id, f"Source `{stmt.name}` (topic: {source.topic}) was dropped."
    )


def _terminate(ctx: Context, query_id: str) -> None:
    info = ctx.catalog.queries.pop(query_id)
    for name in info.sources:
        src = ctx.catalog.source(name)
        if src is not None:
            src.readers.discard(query_id)
    if not ctx.dry_run:
        ctx.engine.stop_query(query_id, cleanup=True)


def terminate(ctx: Context, stmt: ast.TerminateQuery, text: str) -> dict[str, object]:
    if stmt.query_id is None:
        ids = list(ctx.catalog.queries)
        for qid in ids:
            _terminate(ctx, qid)
        return _status(ctx, text, "terminate/ALL/execute", "Query terminated.")
    query_id = stmt.query_id.upper()
    if query_id not in ctx.catalog.queries:
        if query_id.startswith("TRANSIENT_") or stmt.query_id.startswith("transient_"):
            raise unsupported("TERMINATE of a transient query (use /close-query)")
        raise KsqlStatementError(f"Unknown queryId: {stmt.query_id}")
    _terminate(ctx, query_id)
    return _status(ctx, text, f"terminate/{query_id}/execute", "Query terminated.")


def refuse_alter_of_source(catalog: Catalog, kind: str, text: str) -> None:
    """ALTER is not run by this engine, but ksqlDB's refusal for a read-only source is kept."""
    if kind not in ("ALTER STREAM", "ALTER TABLE"):
        return
    from cart_pipeline.engine.sql.lexer import TokenKind, tokenize

    tokens = tokenize(text)
    if len(tokens) < 3 or tokens[2].kind not in (TokenKind.WORD, TokenKind.QUOTED_IDENTIFIER):
        return
    source = catalog.source(tokens[2].value)
    if source is not None and source.is_source and source.kind == kind.split()[1]:
        what = source.kind.lower()
        raise KsqlStatementError(
            f"Cannot alter {what} '{source.name}': ALTER operations are not supported on "
            f"source {what}s."
        )
