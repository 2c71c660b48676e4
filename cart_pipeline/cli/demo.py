"""``cart-pipeline demo``: presentation of the main job (the work is in pipeline.main_job)."""

from __future__ import annotations

import os

from rich.console import Console
from rich.table import Table

from cart_pipeline.cli.progress import job_progress
from cart_pipeline.embedded import LocalStack, StackConfig


def run_demo(
    console: Console,
    *,
    events: int,
    seed: int | None,
    embedded: bool | None,
    lag_timeout_s: float = 120.0,
) -> int:
    if embedded is None:
        embedded = not (
            os.environ.get("CART_KAFKA_BOOTSTRAP_SERVERS") and os.environ.get("CART_KSQLDB_URL")
        )
    config = StackConfig.from_env()
    if embedded:
        with console.status("Starting the embedded stack (Kafka + ksqlDB engine)…"):
            services = LocalStack(config).up()
        os.environ["CART_KAFKA_BOOTSTRAP_SERVERS"] = services["kafka"].address
        os.environ["CART_KSQLDB_URL"] = services["ksqldb"].address
        console.print(
            f"[green]✓[/] Kafka at {services['kafka'].address}, "
            f"ksqlDB at {services['ksqldb'].address}"
        )
    # Import after the environment is final: resources read it.
    from cart_pipeline.pipeline import ASSETS
    from cart_pipeline.pipeline.main_job import dagster_instance, run_main_job

    instance = dagster_instance(config.home / "dagster")
    console.print(f"Materializing every asset through Dagster ({events:,} events)…")
    with job_progress(console, instance, total=len(ASSETS)):
        result = run_main_job(instance, events=events, seed=seed, lag_timeout_s=lag_timeout_s,
                              log_level="WARNING")  # fmt: skip
    console.print(f"Dagster run {result.run_id} ({'success' if result.success else 'FAILED'})")

    for failure in result.failures:
        console.print(f"[red]✗[/] {failure}", highlight=False)
    if result.reconciliation:
        console.print(_reconciliation_table(result.reconciliation))
    for name, (passed, description) in result.checks.items():
        mark = "[green]✓ passed[/]" if passed else "[red]✗ failed[/]"
        console.print(f"check {name}: {mark} — {description}", highlight=False)
    if result.carts:
        console.print(_carts_table(result.carts))
    if result.reconciled:
        console.print("[bold green]The totals reconcile.[/]")
        return 0
    console.print("[bold red]The totals do not reconcile (or the run failed).[/]")
    return 1


def _reconciliation_table(report: dict) -> Table:
    table = Table(title="Reconciliation: ksqlDB vs. recomputation from the event log")
    table.add_column("measure")
    table.add_column("value", justify="right")
    for key in (
        "status", "mode", "events_read", "events_total", "keys_compared", "mismatches",
        "missing_in_ksqldb",
        "extra_in_ksqldb", "different_totals", "percent_match", "rejected_records",
        "lag_at_start", "lag", "reconcile_seconds",
    ):  # fmt: skip
        if key in report:
            table.add_row(key.replace("_", " "), str(report[key]))
    return table


def _carts_table(carts: list[tuple[str, str, int]]) -> Table:
    table = Table(title="Some carts (current_shopping_cart, via a pull query)")
    table.add_column("customer")
    table.add_column("item")
    table.add_column("total qty", justify="right")
    for customer, item, total in carts:
        table.add_row(customer, item, str(total))
    return table
