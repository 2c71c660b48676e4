"""The catalog: streams, tables and the persistent queries that feed them.

Plain data, cheap to copy: a request is validated against a copy (the sandbox)
before any of its statements touch the real catalog.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

from cart_pipeline.engine.types import SqlType


@dataclass(frozen=True)
class Column:
    name: str
    type: SqlType
    key: bool = False

    def schema_text(self, key_marker: str = "KEY") -> str:
        suffix = f" {key_marker}" if self.key else ""
        return f"`{self.name}` {self.type}{suffix}"


@dataclass
class DataSource:
    """A stream or table as ksqlDB's metastore knows it."""

    name: str
    kind: str  # "STREAM" | "TABLE"
    columns: tuple[Column, ...]
    topic: str
    key_format: str
    value_format: str
    statement: str
    partitions: int = 1
    replicas: int = 1
    writer_query: str | None = None  # id of the CTAS query that materializes it
    readers: set[str] = field(default_factory=set)  # ids of queries reading it
    value_features: tuple[str, ...] = ()  # ksqlDB's serde features: WRAP_/UNWRAP_SINGLES
    is_source: bool = False  # CREATE SOURCE STREAM/TABLE: read-only

    @property
    def key_columns(self) -> tuple[Column, ...]:
        return tuple(c for c in self.columns if c.key)

    @property
    def value_columns(self) -> tuple[Column, ...]:
        return tuple(c for c in self.columns if not c.key)

    def column(self, name: str) -> Column | None:
        return next((c for c in self.columns if c.name == name), None)

    def schema_text(self) -> str:
        key = "PRIMARY KEY" if self.kind == "TABLE" else "KEY"
        return ", ".join(c.schema_text(key) for c in self.columns)


@dataclass
class QueryInfo:
    """A persistent query (CTAS) as listed by SHOW QUERIES."""

    query_id: str
    statement_text: str
    sink: str
    sink_topic: str
    sources: tuple[str, ...]
    state: str = "RUNNING"


@dataclass
class Catalog:
    sources: dict[str, DataSource] = field(default_factory=dict)
    queries: dict[str, QueryInfo] = field(default_factory=dict)

    def copy(self) -> Catalog:
        return copy.deepcopy(self)

    def source(self, name: str) -> DataSource | None:
        return self.sources.get(name)
