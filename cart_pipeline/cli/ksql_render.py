"""How `cart-pipeline ksql` and `tail` route statements and show answers (no click here).

Everything that talks to ksqlDB is the library's (``cart_pipeline.ksql``); this module only
decides which endpoint a statement belongs to and how its answer is shown. Routing matters
because ksqlDB itself splits the work: queries run on ``/query-stream`` (rows), everything
else on ``/ksql`` (entities), and a push query never ends on its own, so its rows must be
printed as they arrive rather than collected.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import orjson
from rich.cells import cell_len
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from cart_pipeline.ksql import (
    CommandStatus,
    Entity,
    KsqlClient,
    KsqlError,
    KsqlServerError,
    KsqlTransportError,
    QueryList,
    QueryResult,
    SourceDescription,
    SourceList,
    TopicList,
    WarningEntity,
    quote_identifier,
)

#: The stream ``tail`` follows by default: the pipeline's event log.
EVENTS_STREAM = "SHOPPING_CART_EVENTS"

_COMMENT = re.compile(r"(--[^\n]*\n?|/\*.*?\*/)", re.DOTALL)
_PLAIN_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def client_for(url: str | None, timeout: float | None) -> KsqlClient:
    """The library's env-configured client, with ``--url``/``--timeout`` taking precedence.

    Credentials and TLS settings stay env-only (CART_KSQLDB_USERNAME/_PASSWORD/_VERIFY) so
    that secrets never appear on a command line or in shell history.
    """
    environ = dict(os.environ)
    if url:
        environ["CART_KSQLDB_URL"] = url
    overrides: dict[str, Any] = {} if timeout is None else {"timeout": timeout}
    return KsqlClient.from_env(environ, **overrides)


def terminated(statement: str) -> str:
    """ksqlDB wants every statement ``;``-terminated; users at a shell often omit it."""
    text = statement.strip()
    return text if text.endswith(";") else text + ";"


def statement_kind(statement: str) -> str:
    """``"pull"``, ``"push"`` or ``"command"``: which endpoint and which way of printing.

    Comments are ignored; ``EMIT CHANGES`` marks a push query (ksqlDB's own rule).
    """
    text = _COMMENT.sub(" ", statement).strip()
    if not re.match(r"SELECT\b", text, re.IGNORECASE):
        return "command"
    return "push" if re.search(r"\bEMIT\s+CHANGES\b", text, re.IGNORECASE) else "pull"


def source_identifier(name: str) -> str:
    """A stream name as the user typed it, rendered the way ksqlDB would resolve it.

    Unquoted identifiers are upper-cased by ksqlDB, so ``shopping_cart_events`` means
    ``SHOPPING_CART_EVENTS``; anything else is taken literally (and quoted safely).
    """
    exact = name.upper() if _PLAIN_IDENTIFIER.fullmatch(name) else name
    return quote_identifier(exact)


def error_message(exc: KsqlError) -> str:
    """The message a user should read: ksqlDB's own words for a rejected statement."""
    if isinstance(exc, KsqlServerError):
        code = f", error code {exc.error_code}" if exc.error_code is not None else ""
        return f"{exc.message.strip() or '(no message)'} (HTTP {exc.http_status}{code})"
    if isinstance(exc, KsqlTransportError):
        return (
            f"{exc}\nStart the embedded stack with `cart-pipeline up`, or point --url / "
            "CART_KSQLDB_URL at your ksqlDB server."
        )
    return str(exc)


# -- rows ------------------------------------------------------------------------------


def _json_line(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


def _cell(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, (dict, list)):
        return _json_line(value)
    return str(value)


def print_result(console: Console, result: QueryResult, as_json: bool) -> None:
    """A pull query's rows: one JSON array of objects, or a table with the row count."""
    if as_json:
        console.out(_json_line(result.dicts()), highlight=False)
        return
    table = Table(show_lines=False)
    for name, sql_type in zip(result.column_names, result.column_types, strict=False):
        table.add_column(f"{name}\n[dim]{sql_type}[/]")
    for row in result.rows:
        table.add_row(*(escape(_cell(v)) for v in row))
    console.print(table)
    console.print(f"[dim]{len(result.rows)} row(s)[/]")


class RowPrinter:
    """Prints rows of a push query one by one (JSON Lines, or aligned columns).

    Rows are printed as they arrive, so widths cannot come from the data up front: they
    start from the column type and only grow, which keeps most rows aligned.
    """

    def __init__(
        self,
        console: Console,
        columns: Sequence[str],
        as_json: bool,
        types: Sequence[str] = (),
    ) -> None:
        self.console, self.columns, self.as_json = console, list(columns), as_json
        kinds = list(types) + [""] * (len(self.columns) - len(types))
        self.widths = [
            max(len(c), 24 if t.upper().startswith("STRING") else 8)
            for c, t in zip(self.columns, kinds, strict=False)
        ]
        self.count = 0

    def header(self) -> None:
        if not self.as_json:
            self.console.print(self._line(self.columns), style="bold", highlight=False)

    def row(self, row: Sequence[Any]) -> None:
        self.count += 1
        if self.as_json:
            record = dict(zip(self.columns, row, strict=False))
            self.console.out(_json_line(record), highlight=False)
        else:
            self.console.out(self._line([_cell(v) for v in row]), highlight=False)

    def _line(self, cells: Sequence[str]) -> str:
        for i, cell in enumerate(cells[: len(self.widths)]):
            self.widths[i] = max(self.widths[i], cell_len(cell))
        padded = (c + " " * (w - cell_len(c)) for c, w in zip(cells, self.widths, strict=False))
        return "  ".join(padded).rstrip()


def follow(
    client: KsqlClient,
    sql: str,
    console: Console,
    *,
    as_json: bool,
    properties: Mapping[str, Any] | None = None,
    limit: int | None = None,
) -> int:
    """Run a push query and print each row as it arrives; returns the number of rows.

    The wait for rows is unbounded on purpose (a quiet stream is normal); Ctrl-C, the
    ``limit`` or the server ending the query stops it, and the query is always closed on
    the server (``PushQuery`` does that when iteration stops).
    """
    with client.stream(sql, properties=properties, limit=limit, idle_timeout=None) as query:
        printer = RowPrinter(console, query.column_names, as_json, query.column_types)
        printer.header()
        try:
            for row in query:
                printer.row(row)
        except KeyboardInterrupt:
            # Ctrl-C is how a user ends a push query: not an error. Leaving the block
            # closes the query on the server.
            return printer.count
    return printer.count


# -- entities (/ksql) ------------------------------------------------------------------


def _sources_table(entity: SourceList) -> Table:
    table = Table(title="Streams" if entity.type == "streams" else "Tables")
    for column in ("name", "topic", "key format", "value format", "windowed"):
        table.add_column(column, overflow="fold")
    for s in entity.sources:
        table.add_row(s.name, s.topic, s.key_format, s.value_format, str(s.is_windowed).lower())
    return table


def _queries_table(entity: QueryList) -> Table:
    table = Table(title="Queries")
    for column in ("id", "type", "state", "sinks", "query"):
        table.add_column(column, overflow="fold")
    for q in entity.queries:
        table.add_row(
            q.id, q.query_type or "", q.state or "", ", ".join(q.sinks), escape(q.query_string)
        )
    return table


def _topics_table(entity: TopicList) -> Table:
    table = Table(title="Kafka topics")
    table.add_column("name", overflow="fold")
    table.add_column("partitions", justify="right")
    for t in entity.topics:
        table.add_row(t.name, str(t.partitions))
    return table


def _description(console: Console, entity: SourceDescription) -> None:
    console.print(
        f"[bold]{escape(entity.name)}[/] {entity.source_type.lower()} on topic "
        f"[bold]{escape(entity.topic)}[/] (key {entity.key_format}, value {entity.value_format})"
    )
    table = Table()
    for column in ("column", "type", "kind"):
        table.add_column(column, overflow="fold")
    for f in entity.fields:
        table.add_row(f.name, escape(f.sql_type), f.kind or "")
    console.print(table)
    for label, ids in (("written by", entity.write_queries), ("read by", entity.read_queries)):
        if ids:
            console.print(f"{label}: {', '.join(ids)}")


def _command_status(console: Console, entity: CommandStatus) -> None:
    style = "green" if entity.status.upper() == "SUCCESS" else "yellow"
    text = f"[{style}]{escape(entity.status)}[/]: {escape(entity.message)}"
    if entity.query_id and entity.query_id not in entity.message:
        text += f" (query {escape(entity.query_id)})"
    console.print(text)


def print_entities(console: Console, entities: Sequence[Entity], as_json: bool) -> None:
    """Every entity readably; unknown kinds (SHOW PROPERTIES, functions…) as pretty JSON."""
    if as_json:
        console.out(_json_line([dict(e.raw) for e in entities]), highlight=False)
        return
    if not entities:
        console.print("[green]OK[/] (ksqlDB returned no entity for this statement)")
    renderers: dict[type, Callable[[Any], Table]] = {
        SourceList: _sources_table,
        QueryList: _queries_table,
        TopicList: _topics_table,
    }
    for entity in entities:
        render = renderers.get(type(entity))
        if render is not None:
            console.print(render(entity))
        elif isinstance(entity, SourceDescription):
            _description(console, entity)
        elif isinstance(entity, CommandStatus):
            _command_status(console, entity)
        elif isinstance(entity, WarningEntity):
            console.print(f"[yellow]warning:[/] {escape(entity.message)}")
        else:
            raw = {k: v for k, v in entity.raw.items() if k not in ("statementText", "warnings")}
            console.print_json(_json_line(raw))
        for warning in entity.warnings:
            console.print(f"[yellow]warning:[/] {escape(warning)}")


def run_statement(
    client: KsqlClient,
    statement: str,
    console: Console,
    *,
    as_json: bool,
    properties: Mapping[str, Any] | None = None,
) -> None:
    """Send ``statement`` to the endpoint ksqlDB expects for it and print the answer."""
    sql = terminated(statement)
    kind = statement_kind(sql)
    if kind == "pull":
        print_result(console, client.query(sql, properties=properties), as_json)
    elif kind == "push":
        follow(client, sql, console, as_json=as_json, properties=properties)
    else:
        print_entities(console, client.execute(sql, properties=properties), as_json)


def parse_properties(pairs: Iterable[str]) -> dict[str, str]:
    """``key=value`` pairs (``--property``) as ksqlDB streams properties."""
    properties: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"property {pair!r} is not key=value")
        properties[key.strip()] = value.strip()
    return properties
