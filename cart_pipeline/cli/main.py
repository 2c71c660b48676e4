"""Entry point of ``cart-pipeline``. Only argument handling lives here; the work is elsewhere."""

from __future__ import annotations

import json
import sys

import click
from rich.console import Console
from rich.table import Table

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
def demo() -> None:
    """The main job: start the embedded stack and prove it healthy (the pipeline joins later)."""
    stack = LocalStack(StackConfig.from_env())
    with console.status("Starting the local stack…"):
        services = stack.up()
    _print_status(services)
    if not all(s.healthy for s in services.values()):
        raise StackError("the stack is not healthy; see `cart-pipeline status`")
    console.print("[green]The local stack is up.[/] Stop it with `cart-pipeline down`.")


@cli.command()
def down() -> None:
    """Stop the local stack (data is kept for the next `up`)."""
    stopped = LocalStack(StackConfig.from_env()).down()
    console.print(f"stopped: {', '.join(stopped)}" if stopped else "nothing was running")


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
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


def main() -> None:
    cli(prog_name="cart-pipeline")
