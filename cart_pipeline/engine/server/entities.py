"""Builders for ksqlDB's /ksql response entities (SHOW, LIST, DESCRIBE)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from cart_pipeline.engine.catalog.model import DataSource, QueryInfo

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
    return {
        "queryString": q.statement_text,
        "sinks": [q.sink],
        "sinkKafkaTopics": [q.sink_topic],
        "id": q.query_id,
        "statusCount": {state: 1},
        "queryType": "PERSISTENT",
        "state": state,
    }


def queries(engine: Engine, text: str) -> Entity:
    items = [running_query(engine, q) for q in engine.catalog.queries.values()]
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
