"""Entry point of ``cart-pipeline``. Only argument handling lives here; the work is elsewhere."""

from __future__ import annotations

import json
import sys

import click
from rich.console import Console
from rich.table import Table

from cart_pipeline.cli.ksql_commands import ksql, tail
from cart_pipeline.embedded import LocalStack, ServiceStatus, StackConfig, StackError

console = Console()
err_console = Console(stderr=True)


class _Group(click.Group):
    """Turns the package's own errors into one readable message and exit code 1."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except StackError as exc:
            err_console.print(f"[bold red]error:[/] {exc}", highlight=False, markup=True)
            ctx.exit(1)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """Event-sourced shopping cart on Kafka + ksqlDB, orchestrated by Dagster."""


@cli.command()
def up() -> None:
    """Start the local stack (Kafka broker + ksqlDB engine) in the background."""
    stack = LocalStack(StackConfig.from_env())
    with console.status("Starting the local stack…"):
        services = stack.up()
    _print_status(services)
    if not all(s.healthy for s in services.values()):
        raise StackError("the stack started but is not healthy; see `cart-pipeline status`")


@cli.command()
@click.option(
    "--events",
    default=10_000,
    show_default=True,
    envvar="CART_DEMO_EVENTS",
    help="Synthetic events to load.",
)
@click.option(
    "--seed",
    type=int,
    default=None,
    envvar="CART_DEMO_SEED",
    help="Seed of the generator (default: derived from the run id).",
)
@click.option(
    "--embedded/--no-embedded",
    default=None,
    envvar="CART_EMBEDDED",
    help="Start the embedded stack (default: unless CART_KAFKA_BOOTSTRAP_SERVERS "
    "and CART_KSQLDB_URL point elsewhere).",
)
@click.option(
    "--lag-timeout",
    default=120.0,
    show_default=True,
    envvar="CART_RECONCILE_LAG_TIMEOUT_S",
    help="Seconds the reconciliation waits for ksqlDB to catch up before 'stale'.",
)
def demo(events: int, seed: int | None, embedded: bool | None, lag_timeout: float) -> None:
    """The main job: start the stack, materialize every asset through Dagster, report."""
    from cart_pipeline.cli.demo import run_demo

    sys.exit(run_demo(console, events=events, seed=seed, embedded=embedded,
                      lag_timeout_s=lag_timeout))  # fmt: skip


@cli.command()
def down() -> None:
    """Stop the local stack (data is kept for the next `up`)."""
    stopped = LocalStack(StackConfig.from_env()).down()
    console.print(f"stopped: {', '.join(stopped)}" if stopped else "nothing was running")


@cli.command()
@click.option(
    "--json", "as_json", is_flag=True, envvar="CART_CLI_JSON", help="Machine-readable output."
)
def status(as_json: bool) -> None:
    """Show each service's pid, health and address. Exit 1 when something is down."""
    services = LocalStack(StackConfig.from_env()).status()
    if as_json:
        click.echo(json.dumps({name: s.as_dict() for name, s in services.items()}, indent=2))
    else:
        _print_status(services)
    if not all(s.healthy for s in services.values()):
        sys.exit(1)


def _print_status(services: dict[str, ServiceStatus]) -> None:
    table = Table(title="cart_pipeline local stack")
    for column in ("service", "address", "pid", "health"):
        table.add_column(column)
    for s in services.values():
        health = "[green]healthy[/]" if s.healthy else (
            "[yellow]unhealthy[/]" if s.running else "[red]stopped[/]")  # fmt: skip
        table.add_row(s.name, s.address, str(s.pid or "-"), health)
    console.print(table)


cli.add_command(ksql)
cli.add_command(tail)


def main() -> None:
    cli(prog_name="cart-pipeline")
