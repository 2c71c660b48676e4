"""Event generation alone (no Kafka): CartEventGenerator's events/s against the 1M/s target.

    .venv/bin/python bench/generation_bench.py                  # 1M events, 9 rounds (~1 min)
    .venv/bin/python bench/generation_bench.py --profile        # plus cProfile of one run
    .venv/bin/python bench/generation_bench.py --baseline-rev 8dcc748   # A/B vs an old encoder

What is timed: constructing ``CartEventGenerator`` (Faker pools, fragment tables) and
iterating all its batches, i.e. every key and value as ready-to-produce bytes plus the
expected totals, exactly what ``load_events`` consumes. Three configurations: the loader's
default (1,000 customers x 500 items, Zipf 1.1), the same with 1 % malformed records (the
recompute/reconcile benches' data), and a 1M-line key space (10,000 customers x 100 items,
uniform). Rounds interleave the contenders; medians are reported.

``--baseline-rev REV`` adds a contender running the generator with ``encoding.py`` as of git
revision REV (loaded from ``git show``), to measure an encoder change in the same run.
"""

from __future__ import annotations

import argparse
import cProfile
import importlib.util
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from _common import interleaved, machine, median, profile_report, write_results
from rich.console import Console
from rich.table import Table

import cart_pipeline.loader.generator as generator_module
from cart_pipeline.loader import CartEventGenerator, GeneratorConfig

TARGET = 1_000_000
ROOT = Path(__file__).resolve().parent.parent


def measure(config: GeneratorConfig, encoder: Any = None) -> dict[str, float]:
    """One whole run; ``encoder`` (a class) replaces EventEncoder for this run only."""
    current = generator_module.EventEncoder
    if encoder is not None:
        setattr(generator_module, "EventEncoder", encoder)  # noqa: B010 (mypy: a class)
    try:
        cpu = time.process_time()
        started = time.perf_counter()
        generator = CartEventGenerator(config)
        count = sum(len(batch) for batch in generator.batches())
        elapsed = time.perf_counter() - started
        cpu = time.process_time() - cpu
    finally:
        setattr(generator_module, "EventEncoder", current)  # noqa: B010
    assert count == config.n_events
    # CPU seconds of this process: less disturbed than wall time by other processes on the
    # shared cores (generation is single-threaded).
    return {
        "events": count,
        "elapsed_s": elapsed,
        "events_per_s": count / elapsed,
        "cpu_s": cpu,
        "events_per_cpu_s": count / cpu,
    }


def encoder_at(rev: str, tmp: Path) -> Any:
    """``EventEncoder`` from ``cart_pipeline/loader/encoding.py`` at git revision ``rev``."""
    source = subprocess.run(
        ["git", "show", f"{rev}:cart_pipeline/loader/encoding.py"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    path = tmp / f"encoding_{rev.replace('/', '_')}.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.EventEncoder


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--profile", action="store_true", help="cProfile one default run")
    parser.add_argument("--baseline-rev", help="also run encoding.py as of this git revision")
    args = parser.parse_args(argv)
    console = Console(width=160)
    machine_info = machine()
    n = args.events
    configs = {
        "default (1k x 500, Zipf 1.1)": GeneratorConfig(n_events=n, seed=1),
        "default + 1% malformed": GeneratorConfig(n_events=n, seed=1, malformed_share=0.01),
        "1M lines (10k x 100, uniform)": GeneratorConfig(
            n_events=n, seed=1, n_customers=10_000, n_items=100, skew=0.0
        ),
    }
    with tempfile.TemporaryDirectory(prefix="generation_bench_") as tmp:
        contenders: dict[str, Callable[[], dict[str, float]]] = {
            name: partial(measure, config) for name, config in configs.items()
        }
        if args.baseline_rev:
            old = encoder_at(args.baseline_rev, Path(tmp))
            default = configs["default (1k x 500, Zipf 1.1)"]
            contenders[f"default, encoding.py @ {args.baseline_rev}"] = partial(
                measure, default, old
            )
        runs = interleaved(contenders, args.rounds, console)
    profile = ""
    if args.profile:
        profiler = cProfile.Profile()
        profiler.enable()
        measure(configs["default (1k x 500, Zipf 1.1)"])
        profiler.disable()
        profile = profile_report(profiler, 15)
        console.print("[bold]cProfile of one default run (by tottime):[/bold]")
        console.print(profile, markup=False, highlight=False)

    medians = {name: median(r) for name, r in runs.items()}
    table = Table(title=f"generation, {n:,} events, median of {args.rounds}")
    table.add_column("configuration")
    table.add_column("events/s (median)", justify="right")
    table.add_column("/ 1M target", justify="right")
    table.add_column("events/CPU-s (median)", justify="right")
    table.add_column("runs (events/s)", justify="right")
    for name, r in runs.items():
        table.add_row(
            name,
            f"{medians[name]:,.0f}",
            f"{medians[name] / TARGET:.2f}",
            f"{median(r, 'events_per_cpu_s'):,.0f}",
            ", ".join(f"{x['events_per_s']:,.0f}" for x in r),
        )
    console.print(table)
    machine_info["load_avg_at_end"] = machine()["load_avg_at_start"]
    console.print(f"machine: {machine_info}")
    write_results("generation", {
        "events": n,
        "rounds": args.rounds,
        "target_events_per_s": TARGET,
        "machine": machine_info,
        "runs": runs,
        "medians_events_per_s": medians,
        "medians_events_per_cpu_s": {k: median(r, "events_per_cpu_s") for k, r in runs.items()},
        "ratio_to_target": {name: m / TARGET for name, m in medians.items()},
        "baseline_rev": args.baseline_rev,
        "profile": profile or None,
    }, console)  # fmt: skip
    main_name = next(iter(configs))
    return 0 if medians[main_name] >= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
