"""A live progress bar for ``cart-pipeline demo``: which asset runs, how many are done.

The job itself runs on the main thread (Dagster only handles Ctrl-C there), so progress is
read from the Dagster instance's event log by a small poller thread: the same step events
the UI shows, with no hook into the job.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import dagster as dg
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)

#: Tag of runs started by the CLI (set by ``pipeline.main_job.run_main_job``).
TRIGGER_TAG = ("cart_pipeline/trigger", "cli")
STEP_EVENTS = {
    dg.DagsterEventType.STEP_START,
    dg.DagsterEventType.STEP_SUCCESS,
    dg.DagsterEventType.STEP_FAILURE,
}


def step_progress(instance: dg.DagsterInstance, since: datetime) -> tuple[int, list[str]] | None:
    """(steps finished, steps running) of the newest CLI run created after ``since``."""
    runs = instance.get_runs(
        filters=dg.RunsFilter(tags=dict([TRIGGER_TAG]), created_after=since), limit=1
    )
    if not runs:
        return None
    running: dict[str, None] = {}
    finished = 0
    for entry in instance.all_logs(runs[0].run_id, of_type=STEP_EVENTS):
        event = entry.dagster_event
        if event is None or event.step_key is None:
            continue
        if event.event_type == dg.DagsterEventType.STEP_START:
            running[event.step_key] = None
        else:
            running.pop(event.step_key, None)
            finished += 1
    return finished, list(running)


@contextmanager
def job_progress(
    console: Console, instance: dg.DagsterInstance, total: int, poll_s: float = 0.5
) -> Iterator[None]:
    """Show a bar over ``total`` steps while the body runs the job; always stops cleanly."""
    since = datetime.now(UTC)
    stop = threading.Event()
    columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
               MofNCompleteColumn(), TimeElapsedColumn())  # fmt: skip
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task("starting the Dagster run…", total=total)

        def update() -> None:
            found = step_progress(instance, since)
            if found is not None:
                done, running = found
                label = ", ".join(running) if running else "between steps"
                progress.update(task, completed=done, description=f"materializing {label}")

        poller = threading.Thread(target=_poll, args=(update, stop, poll_s), daemon=True)
        poller.start()
        try:
            yield
        finally:
            stop.set()
            poller.join(timeout=5)


def _poll(update: Callable[[], None], stop: threading.Event, poll_s: float) -> None:
    """Progress is a nicety: a failed read of the event log must never fail the demo."""
    while not stop.wait(poll_s):
        try:
            update()
        except Exception:
            continue
