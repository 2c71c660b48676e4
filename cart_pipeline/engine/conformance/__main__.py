"""`python -m cart_pipeline.engine.conformance [--files qtt/sum ...] [--json out.json]`.

Uses the engine at --url and the broker at --bootstrap; without --url an engine subprocess
is started on the broker, and without --bootstrap a local broker is started too.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
from rich.console import Console

from cart_pipeline.engine.conformance import report
from cart_pipeline.engine.conformance.cases import conformance_dir, load_cases
from cart_pipeline.engine.conformance.runner import Runner


@contextlib.contextmanager
def _broker(bootstrap: str | None, workdir: Path) -> Iterator[str]:
    if bootstrap:
        yield bootstrap
        return
    from cart_pipeline.embedded import KafkaBroker, KafkaConfig
    from cart_pipeline.embedded import process as proc

    broker = KafkaBroker(
        KafkaConfig(
            data_dir=workdir / "kafka", port=proc.free_port(), controller_port=proc.free_port()
        )
    )
    broker.start()
    try:
        yield broker.config.bootstrap_servers
    finally:
        broker.stop()


@contextlib.contextmanager
def _engine(url: str | None, bootstrap: str, workdir: Path) -> Iterator[str]:
    if url:
        yield url
        return
    from cart_pipeline.embedded import process as proc

    port = proc.free_port()
    env = dict(os.environ)
    env.update({
        "CART_KSQL_BOOTSTRAP_SERVERS": bootstrap,
        "CART_KSQL_HOST": "127.0.0.1",
        "CART_KSQL_PORT": str(port),
        "CART_KSQL_STATE_DIR": str(workdir),
        "CART_KSQL_SERVICE_ID": f"conformance_{os.getpid()}_",
    })  # fmt: skip
    log = workdir / "engine.log"
    pid = proc.spawn([sys.executable, "-m", "cart_pipeline.engine"], log, env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            if not proc.is_alive(pid):
                raise SystemExit(f"engine exited:\n{proc.tail(log)}")
            try:
                if httpx.get(f"{url}/healthcheck", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit(f"engine not ready:\n{proc.tail(log)}")
            time.sleep(0.2)
        yield url
    finally:
        proc.stop(pid, "cart_pipeline.engine")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m cart_pipeline.engine.conformance")
    ap.add_argument("--files", nargs="*", help="e.g. qtt/sum rqtt/push-queries (default: all)")
    ap.add_argument("--dir", type=Path, default=None, help="conformance folder")
    ap.add_argument("--json", type=Path, default=None, help="write outcomes as JSON here")
    ap.add_argument("--url", default=None, help="engine URL (default: start one)")
    ap.add_argument("--bootstrap", default=None, help="Kafka bootstrap (default: start one)")
    ap.add_argument("--workers", type=int, default=6)
    ap.add_argument("--name", default=None, help="only cases whose name contains this")
    args = ap.parse_args(argv)
    root = args.dir or conformance_dir()
    if not root.is_dir():
        print(f"no conformance cases at {root}", file=sys.stderr)
        return 2
    cases = load_cases(root, args.files)
    if args.name:
        cases = [c for c in cases if args.name in c.name]
    console = Console(width=140)
    with tempfile.TemporaryDirectory(prefix="conformance-") as tmp:
        workdir = Path(tmp)
        with (
            _broker(args.bootstrap, workdir) as bootstrap,
            _engine(args.url, bootstrap, workdir) as url,
        ):
            runner = Runner(url, bootstrap, workers=args.workers)
            try:
                outcomes = runner.run(cases)
            finally:
                runner.close()
    for o in outcomes:
        if o.status != "passed" or o.detail:  # a passed case's detail says why it passed
            colour = {"failed": "red", "unsupported": "yellow"}.get(o.status, "cyan")
            console.print(f"[{colour}]{o.status.upper()}[/{colour}] {o.file} :: {o.name}")
            console.print(f"    {o.detail}", markup=False, highlight=False)
    console.print(report.table(outcomes))
    if args.json:
        report.write_json(outcomes, args.json)
    return 1 if any(o.status == "failed" for o in outcomes) else 0


if __name__ == "__main__":
    raise SystemExit(main())
