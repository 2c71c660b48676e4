"""Apply the pipeline's ``.sql`` files to ksqlDB idempotently, refusing silent drift.

Re-materializing a DDL asset must be harmless, and a source that exists with another
definition must fail loudly (with a readable diff) rather than be kept as it is.
"""

from __future__ import annotations

import difflib
import re
import time
from dataclasses import dataclass
from importlib import resources

from cart_pipeline.ksql import CommandStatus, KsqlClient, SourceDescription


class DefinitionMismatch(Exception):
    """A source exists in ksqlDB with a definition other than the pipeline's."""


class QueryNotRunning(Exception):
    """A table's persistent query is missing or did not reach RUNNING in time."""


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    key: bool = False

    def render(self) -> str:
        return f"{self.name} {self.type}{' KEY' if self.key else ''}"


@dataclass(frozen=True)
class SourceSpec:
    """What DESCRIBE must report for a source the pipeline owns."""

    name: str
    kind: str  # STREAM | TABLE
    topic: str
    value_format: str
    columns: tuple[Column, ...]
    sql_file: str

    def sql(self) -> str:
        return resources.files("cart_pipeline.pipeline").joinpath("sql", self.sql_file).read_text()


SHOPPING_CART_EVENTS = SourceSpec(
    name="SHOPPING_CART_EVENTS",
    kind="STREAM",
    topic="shopping_cart_events",
    value_format="JSON",
    columns=(Column("CUSTOMER", "STRING"), Column("ITEM", "STRING"), Column("QTY", "INTEGER")),
    sql_file="shopping_cart_events.sql",
)
CURRENT_SHOPPING_CART = SourceSpec(
    name="CURRENT_SHOPPING_CART",
    kind="TABLE",
    topic="CURRENT_SHOPPING_CART",
    value_format="JSON",
    columns=(
        Column("CUSTOMER", "STRING", key=True),
        Column("ITEM", "STRING", key=True),
        Column("TOTAL_QTY", "INTEGER"),
    ),
    sql_file="current_shopping_cart.sql",
)


@dataclass(frozen=True)
class Applied:
    created: bool
    description: SourceDescription
    query_id: str | None = None


def _exists(ksql: KsqlClient, spec: SourceSpec) -> bool:
    listed = ksql.list_streams() if spec.kind == "STREAM" else ksql.list_tables()
    return spec.name in {s.name for s in listed}


def differences(spec: SourceSpec, found: SourceDescription) -> list[str]:
    """Human-readable differences between the spec and what DESCRIBE reports."""
    problems: list[str] = []
    if found.source_type.upper() != spec.kind:
        problems.append(f"type: expected {spec.kind}, found {found.source_type.upper()}")
    if found.topic != spec.topic:
        problems.append(f"topic: expected {spec.topic!r}, found {found.topic!r}")
    if found.value_format.upper() != spec.value_format:
        problems.append(f"value format: expected {spec.value_format}, found {found.value_format}")
    have = [Column(f.name, f.sql_type.upper(), f.is_key) for f in found.fields]
    if have != list(spec.columns):
        diff = difflib.unified_diff(
            [c.render() for c in spec.columns], [c.render() for c in have],
            "columns (pipeline)", "columns (ksqlDB)", lineterm="",
        )  # fmt: skip
        problems.append("\n".join(diff))
    return problems


def apply_source(ksql: KsqlClient, spec: SourceSpec) -> Applied:
    """Create the source from its .sql file when missing; verify it when present."""
    if _exists(ksql, spec):
        found = ksql.describe(spec.name)
        problems = differences(spec, found)
        if problems:
            raise DefinitionMismatch(
                f"{spec.kind} {spec.name} already exists with a different definition; it was "
                f"left unchanged. Drop it (DROP {spec.kind} {spec.name};) to let the pipeline "
                "create it again, or align the pipeline's SQL.\n" + "\n".join(problems)
            )
        return Applied(False, found, found.write_queries[0] if found.write_queries else None)
    entities = ksql.execute(spec.sql())
    query_id = next(
        (e.query_id for e in entities if isinstance(e, CommandStatus) and e.query_id), None
    )
    return Applied(True, ksql.describe(spec.name), query_id)


def wait_until_running(ksql: KsqlClient, table: str, timeout_s: float) -> str:
    """The id of the persistent query writing ``table`` once it is RUNNING (bounded wait)."""
    deadline = time.monotonic() + timeout_s
    state = "no query"
    while True:
        writers = ksql.describe(table).write_queries
        if writers:
            query = next((q for q in ksql.list_queries() if q.id == writers[0]), None)
            state = (query.state or "UNKNOWN") if query else "not listed"
            if query is not None and _running(query.state):
                return query.id
        if time.monotonic() > deadline:
            raise QueryNotRunning(
                f"the persistent query of {table} is not RUNNING after {timeout_s:.0f}s "
                f"(state: {state}); check the ksqlDB server's log."
            )
        time.sleep(0.5)


def _running(state: str | None) -> bool:
    # ksqlDB reports "RUNNING" (and, on clusters, "RUNNING:1" style counts).
    return bool(state) and re.match(r"RUNNING", state or "") is not None
