"""``cart-pipeline ksql`` and ``cart-pipeline tail``: option parsing and exit codes only.

Every option has an environment variable so the same commands work in scripts and CI
without flags; credentials are env-only (CART_KSQLDB_USERNAME / CART_KSQLDB_PASSWORD).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import click
from rich.console import Console

from cart_pipeline.cli.ksql_render import (
    EVENTS_STREAM,
    client_for,
    error_message,
    follow,
    parse_properties,
    run_statement,
    source_identifier,
)
from cart_pipeline.ksql import KsqlError

console = Console()
err_console = Console(stderr=True)

url_option = click.option(
    "--url",
    envvar="CART_KSQLDB_URL",
    default=None,
    help="ksqlDB server  [env CART_KSQLDB_URL; default http://127.0.0.1:8088]",
)
timeout_option = click.option(
    "--timeout",
    type=float,
    envvar="CART_KSQLDB_TIMEOUT_S",
    default=None,
    help="Bound on each request, seconds  [env CART_KSQLDB_TIMEOUT_S; default 30]",
)
json_option = click.option(
    "--json",
    "as_json",
    is_flag=True,
    envvar="CART_CLI_JSON",
    help="Machine-readable output (JSON; JSON Lines for streaming rows)  [env CART_CLI_JSON]",
)


@contextmanager
def _clean_errors() -> Iterator[None]:
    """ksqlDB's message and exit 1 instead of a traceback; Ctrl-C or a closed pipe exit 0."""
    try:
        yield
    except KsqlError as exc:
        err_console.print(f"[bold red]error:[/] {error_message(exc)}", highlight=False)
        sys.exit(1)
    except ValueError as exc:  # bad option values, e.g. a malformed --property
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False)
        sys.exit(2)
    except KeyboardInterrupt:
        err_console.print("[dim]interrupted[/]")
        sys.exit(0)
    except BrokenPipeError:
        # `cart-pipeline tail | head`: the reader left; leave quietly (and do not let the
        # interpreter's final flush of stdout complain again).
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(0)


@click.command()
@click.argument("statement")
@url_option
@timeout_option
@json_option
@click.option(
    "--property",
    "-p",
    "properties",
    multiple=True,
    envvar="CART_CLI_PROPERTIES",
    metavar="KEY=VALUE",
    help="A ksqlDB streams property, e.g. -p auto.offset.reset=earliest (repeatable)  "
    "[env CART_CLI_PROPERTIES, space-separated]",
)
def ksql(
    statement: str, url: str | None, timeout: float | None, as_json: bool, properties: tuple
) -> None:
    """Run one ksqlDB statement against any ksqlDB (embedded or Confluent's) and print it.

    SELECTs run as queries and print rows (a push query, EMIT CHANGES, prints rows as they
    arrive until Ctrl-C); every other statement runs through /ksql and prints its result.

    \b
    Examples:
      cart-pipeline ksql "SHOW STREAMS"
      cart-pipeline ksql "SELECT * FROM CURRENT_SHOPPING_CART WHERE CUSTOMER = 'Ann'"
      cart-pipeline ksql --json "DESCRIBE SHOPPING_CART_EVENTS"
    """
    with _clean_errors():
        props = parse_properties(properties)
        with client_for(url, timeout) as client:
            run_statement(client, statement, console, as_json=as_json, properties=props)


@click.command()
@url_option
@timeout_option
@json_option
@click.option(
    "--from-beginning",
    is_flag=True,
    envvar="CART_TAIL_FROM_BEGINNING",
    help="Start at the oldest event (auto.offset.reset=earliest) instead of new ones only  "
    "[env CART_TAIL_FROM_BEGINNING]",
)
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    envvar="CART_TAIL_LIMIT",
    default=None,
    help="Stop after this many events  [env CART_TAIL_LIMIT; default: follow until Ctrl-C]",
)
@click.option(
    "--stream",
    "stream_name",
    envvar="CART_TAIL_STREAM",
    default=EVENTS_STREAM,
    show_default=True,
    help="The stream to follow  [env CART_TAIL_STREAM]",
)
def tail(
    url: str | None,
    timeout: float | None,
    as_json: bool,
    from_beginning: bool,
    limit: int | None,
    stream_name: str,
) -> None:
    """Follow the event stream: print each cart event as ksqlDB sees it.

    A push query (SELECT * FROM SHOPPING_CART_EVENTS EMIT CHANGES); Ctrl-C stops it.
    """
    sql = f"SELECT * FROM {source_identifier(stream_name)} EMIT CHANGES;"
    properties = {"auto.offset.reset": "earliest" if from_beginning else "latest"}
    with _clean_errors(), client_for(url, timeout) as client:
        rows = follow(client, sql, console, as_json=as_json, properties=properties, limit=limit)
        if not as_json:
            err_console.print(f"[dim]{rows} event(s)[/]")
