"""Builders for ksqlDB's /ksql response entities (SHOW, LIST, DESCRIBE)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from cart_pipeline.engine.catalog.model import DataSource, QueryInfo
from cart_pipeline.engine.errors import KsqlStatementError
from cart_pipeline.engine.runtime.transient import TransientQuery

if TYPE_CHECKING:
    from cart_pipeline.engine.engine import Engine

Entity = dict[str, object]


def _source_info(s: DataSource) -> Entity:
    return {
        "type": s.kind,
        "name": s.name,
        "topic": s.topic,
        "keyFormat": s.key_format,
        "valueFormat": s.value_format,
        "isWindowed": False,
    }


def streams(engine: Engine, text: str) -> Entity:
    items = [_source_info(s) for s in engine.catalog.sources.values() if s.kind == "STREAM"]
    return {"@type": "streams", "statementText": text, "streams": items, "warnings": []}


def tables(engine: Engine, text: str) -> Entity:
    items = [_source_info(s) for s in engine.catalog.sources.values() if s.kind == "TABLE"]
    return {"@type": "tables", "statementText": text, "tables": items, "warnings": []}


def running_query(engine: Engine, q: QueryInfo) -> Entity:
    state = engine.query_state(q.query_id)
    sinkless = q.query_id.startswith("CST_")  # a source table's materialization: no sink
    return {
        "queryString": q.statement_text,
        "sinks": [] if sinkless else [q.sink],
        "sinkKafkaTopics": [] if sinkless else [q.sink_topic],
        "id": q.query_id,
        "statusCount": {state: 1},
        "queryType": "PERSISTENT",
        "state": state,
    }


def push_query(tq: TransientQuery) -> Entity:
    """A live push query, as ksqlDB lists it (its `getAllLiveQueries` include transients)."""
    return {
        "queryString": tq.statement_text,
        "sinks": [],
        "sinkKafkaTopics": [],
        "id": tq.query_id,
        "statusCount": {"RUNNING": 1},
        "queryType": "PUSH",
        "state": "RUNNING",
    }


def terminated_push_query(text: str, query_id: str) -> Entity:
    """TERMINATE of a push query: ksqlDB's TerminateQueryEntity, not a command status."""
    return {
        "@type": "terminate_query",
        "statementText": text,
        "queryId": query_id,
        "wasTerminated": True,
        "warnings": [],
    }


def queries(engine: Engine, text: str) -> Entity:
    items = [running_query(engine, q) for q in engine.catalog.queries.values()]
    items += [push_query(tq) for tq in engine.live_push_queries()]
    return {"@type": "queries", "statementText": text, "queries": items, "warnings": []}


def topics(engine: Engine, text: str, all_topics: bool) -> Entity:
    meta = engine.admin.list_topics(timeout=10)
    items = []
    for name in sorted(meta.topics):
        if not all_topics and (name.startswith("_") or name.startswith("__")):
            continue
        info = meta.topics[name]
        replicas = [len(p.replicas) for p in sorted(info.partitions.values(), key=lambda p: p.id)]
        items.append({"name": name, "replicaInfo": replicas})
    return {"@type": "kafka_topics", "statementText": text, "topics": items, "warnings": []}


def properties(engine: Engine, text: str, overrides: dict[str, str]) -> Entity:
    merged = {**engine.default_properties(), **overrides}
    items = [
        {"name": k, "scope": "KSQL" if k.startswith("ksql.") else "STREAMS", "value": v}
        for k, v in sorted(merged.items())
    ]
    return {
        "@type": "properties",
        "statementText": text,
        "properties": items,
        "overwrittenProperties": sorted(overrides),
        "defaultProperties": sorted(k for k in engine.default_properties() if k not in overrides),
        "warnings": [],
    }


def _fields(s: DataSource) -> list[Entity]:
    out: list[Entity] = []
    for c in s.columns:
        f: Entity = {"name": c.name, "schema": c.type.schema_info()}
        if c.key:
            f["type"] = "KEY"
        out.append(f)
    return out


def source_description(engine: Engine, s: DataSource, extended: bool) -> Entity:
    readers = [
        running_query(engine, engine.catalog.queries[q])
        for q in sorted(s.readers)
        if q in engine.catalog.queries
    ]
    writers = (
        [running_query(engine, engine.catalog.queries[s.writer_query])]
        if (s.writer_query and s.writer_query in engine.catalog.queries)
        else []
    )
    # INSERT INTO ... SELECT queries write into it too
    writers += [
        running_query(engine, q)
        for q in engine.catalog.queries.values()
        if q.sink == s.name and q.query_id != s.writer_query
    ]
    offsets: list[Entity] = []
    partitions = replication = 0
    if extended:
        from cart_pipeline.engine import kafka

        partitions = kafka.topic_partitions(engine.admin, s.topic) or 0
        replication = kafka.topic_replicas(engine.admin, s.topic)
        # ksqlDB reports the consumer offsets of the queries writing into the source:
        # i.e. how far behind its input the query that builds this table is (its lag).
        offsets = [engine.query_offsets(str(w["id"])) for w in writers]
    return {
        "name": s.name,
        "windowType": None,
        "readQueries": readers,
        "writeQueries": writers,
        "fields": _fields(s),
        "type": s.kind,
        "timestamp": "",
        "statistics": "",
        "errorStats": "",
        "extended": extended,
        "keyFormat": s.key_format,
        "valueFormat": s.value_format,
        "topic": s.topic,
        "partitions": partitions,
        "replication": replication,
        "statement": s.statement,
        "queryOffsetSummaries": offsets,
        "sourceConstraints": [],
    }


def describe(engine: Engine, s: DataSource, text: str, extended: bool) -> Entity:
    return {
        "@type": "sourceDescription",
        "statementText": text,
        "sourceDescription": source_description(engine, s, extended),
        "warnings": [],
    }


def describe_all(engine: Engine, kind: str, text: str, extended: bool) -> Entity:
    wanted = "STREAM" if kind == "STREAMS" else "TABLE"
    return {
        "@type": "source_descriptions",
        "statementText": text,
        "sourceDescriptions": [
            source_description(engine, s, extended)
            for s in engine.catalog.sources.values()
            if s.kind == wanted
        ],
        "warnings": [],
    }


def query_description(engine: Engine, info: QueryInfo) -> Entity:
    """ksqlDB's QueryDescription of a persistent query, its errors included.

    `topology` and `executionPlan` are Kafka Streams/ksqlDB plan renderings this engine
    does not have; they are left empty rather than imitated.
    """
    query = engine.queries.get(info.query_id)
    state = engine.query_state(info.query_id)
    sink = engine.catalog.source(info.sink)
    return {
        "id": info.query_id,
        "statementText": info.statement_text,
        "windowType": None,
        "fields": _fields(sink) if sink is not None else [],
        "sources": list(info.sources),
        "sinks": [info.sink],
        "topology": "",
        "executionPlan": "",
        "overriddenProperties": {},
        "ksqlHostQueryStatus": {f"{engine.config.host}:{engine.config.port}": state},
        "queryType": "PERSISTENT",
        "queryErrors": list(query.errors) if query is not None else [],
        "tasksMetadata": [],
        "consumerGroupId": engine.config.query_group_id(info.query_id),
        "state": state,
    }


def explain(engine: Engine, query_id: str, text: str) -> Entity:
    """EXPLAIN <query id> (persistent queries only, as in ksqlDB)."""
    info = engine.catalog.queries.get(query_id.upper())
    if info is None:
        raise KsqlStatementError(
            f"Query with id:{query_id} does not exist, "
            "use SHOW QUERIES to view the full set of queries."
        )
    return {
        "@type": "queryDescription",
        "statementText": text,
        "queryDescription": query_description(engine, info),
        "warnings": [],
    }


def query_descriptions(engine: Engine, text: str) -> Entity:
    """SHOW QUERIES EXTENDED."""
    return {
        "@type": "query_descriptions",
        "statementText": text,
        "queryDescriptions": [
            query_description(engine, q) for q in engine.catalog.queries.values()
        ],
        "warnings": [],
    }
