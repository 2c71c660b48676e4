"""Per-file and total counts of passed / failed / unsupported cases (a rich table, or JSON)."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict
from pathlib import Path

import orjson
from rich.console import Console
from rich.table import Table

from cart_pipeline.engine.conformance.runner import Outcome

STATUSES = ("passed", "failed", "unsupported")


def summarize(outcomes: list[Outcome]) -> dict[str, Counter[str]]:
    per_file: dict[str, Counter[str]] = {}
    for o in outcomes:
        per_file.setdefault(o.file, Counter())[o.status] += 1
    return dict(sorted(per_file.items()))


def table(outcomes: list[Outcome]) -> Table:
    t = Table(title="ksqlDB conformance")
    t.add_column("file")
    for s in STATUSES:
        t.add_column(s, justify="right")
    total: Counter[str] = Counter()
    for file, counts in summarize(outcomes).items():
        t.add_row(file, *(str(counts[s]) for s in STATUSES))
        total.update(counts)
    t.add_section()
    t.add_row("total", *(str(total[s]) for s in STATUSES))
    return t


def render(outcomes: list[Outcome], console: Console | None = None, failures: bool = True) -> str:
    console = console or Console(width=120, record=True)
    if failures:
        for o in outcomes:
            if o.status == "failed":
                console.print(
                    f"[red]FAILED[/red] {o.file} :: {o.name}\n    {o.detail}", markup=True
                )
            elif o.status == "passed" and o.detail:
                console.print(f"note {o.file} :: {o.name}\n    {o.detail}", markup=False)
    console.print(table(outcomes))
    return console.export_text() if console.record else ""


def write_json(outcomes: list[Outcome], path: Path) -> None:
    doc = {
        "summary": {f: dict(c) for f, c in summarize(outcomes).items()},
        "cases": [asdict(o) for o in outcomes],
    }
    path.write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2))
