"""What the benchmarks in ``bench/`` share: a fresh broker, Kafka's perf tools, medians, JSON.

* :func:`fresh_broker`: an embedded Kafka broker in a temporary directory, stopped (and the
  directory removed) on exit; yields ``(broker, tmp_dir)``.
* :func:`producer_performance` / :func:`consumer_performance`: Kafka's own
  ``org.apache.kafka.tools.ProducerPerformance`` / ``ConsumerPerformance``, run with
  ``java -cp <cached Kafka lib>/*`` and their summary line parsed.
* :func:`median`, :func:`interleaved` (rounds that interleave contenders), :func:`machine`
  (CPU, versions, load average), :func:`write_results` (JSON in ``bench/results/``).
* :class:`EngineProcess`: the embedded ksqlDB engine as a subprocess.
* :func:`run_child`: run a Python snippet in a fresh interpreter and return the JSON line it
  prints (the memory benchmarks report the child's own peak RSS, ``ru_maxrss``, in it).
"""

from __future__ import annotations

import cProfile
import io
import json
import os
import platform
import pstats
import re
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import confluent_kafka
import httpx
import psutil
from rich.console import Console

from cart_pipeline.embedded import KafkaBroker, KafkaConfig
from cart_pipeline.embedded import process as proc
from cart_pipeline.embedded.runtime import KAFKA_VERSION, find_java, resolve_runtime
from cart_pipeline.kafka_io import KafkaSettings, Topics

RESULTS = Path(__file__).resolve().parent / "results"

_PP_TOTAL = re.compile(r"^(\d+) records sent, ([\d.]+) records/sec \(([\d.]+) MB/sec\)", re.M)
# ConsumerPerformance's CSV line; fetch.nMsg.sec excludes group join / rebalance time.
_CP_LINE = re.compile(
    r"^[^,]+, [^,]+, ([\d.]+), ([\d.]+), (\d+), ([\d.]+), (-?\d+), (\d+), ([\d.]+), ([\d.]+)$",
    re.M,
)

Run = dict[str, float]


# --- broker -------------------------------------------------------------------------------


@contextmanager
def fresh_broker(
    prefix: str, console: Console | None = None, heap: str = "1g"
) -> Iterator[tuple[KafkaBroker, Path]]:
    """A new embedded broker (Kafka 4.1.1) in a temporary directory, stopped on exit.

    SIGTERM becomes ``SystemExit`` so that stopping a benchmark by its pid stops its broker
    and removes the directory too (by default SIGTERM ends Python without ``finally``).
    """
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        broker = KafkaBroker(KafkaConfig(
            data_dir=Path(tmp) / "kafka", port=proc.free_port(), controller_port=proc.free_port(),
            heap=heap,
        ))  # fmt: skip
        if console is not None:
            console.print(f"starting a fresh broker in {tmp} ...")
        broker.start()
        try:
            yield broker, Path(tmp)
        finally:
            broker.stop()


def fresh_topic(settings: KafkaSettings, prefix: str, partitions: int) -> str:
    topic = f"bench_{prefix}_{uuid.uuid4().hex[:8]}"
    Topics(settings).ensure(topic, partitions)
    return topic


# --- Kafka's perf tools -------------------------------------------------------------------


def kafka_tool(main_class: str, args: Sequence[str], timeout_s: float = 1800) -> tuple[str, float]:
    """Run one of Kafka's tools from the cached lib; (stdout, wall seconds)."""
    stdout, wall, _cpu = kafka_tool_cpu(main_class, args, timeout_s)
    return stdout, wall


def kafka_tool_cpu(
    main_class: str, args: Sequence[str], timeout_s: float = 1800
) -> tuple[str, float, float]:
    """As :func:`kafka_tool`, plus the CPU seconds (user + sys) of the JVM, all threads."""
    cmd = [find_java().executable, "-Xmx1g", "-cp", f"{resolve_runtime()}/*", main_class, *args]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, check=False)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if done.returncode != 0:
        raise RuntimeError(f"{main_class} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return done.stdout, wall, cpu


def producer_performance(
    settings: KafkaSettings,
    topic: str,
    n_events: int,
    payload: Sequence[str],
    props: Mapping[str, str],
) -> Run:
    """ProducerPerformance, one transaction for the whole run (``--transaction-duration-ms``)."""
    stdout, wall = kafka_tool(
        "org.apache.kafka.tools.ProducerPerformance",
        [
            "--topic", topic, "--num-records", str(n_events), "--throughput", "-1",
            *payload,
            "--transactional-id", f"bench-{topic}", "--transaction-duration-ms", "3600000",
            "--producer-props", f"bootstrap.servers={settings.bootstrap_servers}",
            *(f"{k}={v}" for k, v in props.items()),
        ],
    )  # fmt: skip
    totals = _PP_TOTAL.findall(stdout)
    if not totals:
        raise RuntimeError(f"ProducerPerformance printed no summary:\n{stdout[-2000:]}")
    records, rate, mb = totals[-1]
    return {
        "events": int(records),
        "events_per_s": float(rate),
        "mb_per_s": float(mb),
        "elapsed_s": int(records) / float(rate),
        "wall_s": wall,
    }


def consumer_performance(
    settings: KafkaSettings, topic: str, n_events: int, config_file: Path
) -> Run:
    """ConsumerPerformance (``config_file`` holds e.g. ``isolation.level=read_committed``).

    ``events_per_s`` is its ``fetch.nMsg.sec``: it excludes the group join, as our
    ``assign()`` has none. ``cpu_s``: CPU seconds of the whole JVM run (start-up, JIT and GC
    included), so ``events_per_cpu_s`` is a lower bound of its efficiency.
    """
    stdout, wall, cpu = kafka_tool_cpu(
        "org.apache.kafka.tools.ConsumerPerformance",
        [
            "--bootstrap-server", settings.bootstrap_servers, "--topic", topic,
            "--messages", str(n_events), "--consumer.config", str(config_file),
            "--group", f"bench-cp-{uuid.uuid4().hex[:8]}", "--timeout", "60000",
        ],
    )  # fmt: skip
    found = _CP_LINE.findall(stdout)
    if not found:
        raise RuntimeError(f"ConsumerPerformance printed no summary:\n{stdout[-2000:]}")
    mb, _mb_s, n, n_s, rebalance_ms, fetch_ms, _fetch_mb_s, fetch_n_s = found[-1]
    assert int(n) >= n_events, (n, n_events)
    return {
        "events": int(n),
        "events_per_s": float(fetch_n_s),
        "events_per_s_incl_join": float(n_s),
        "rebalance_ms": float(rebalance_ms),
        "fetch_ms": float(fetch_ms),
        "mb": float(mb),
        "jvm_wall_s": wall,
        "cpu_s": cpu,
        "events_per_cpu_s": int(n) / cpu if cpu else 0.0,
    }


# --- rounds, medians, profiles ------------------------------------------------------------


def median(runs: Sequence[Run], key: str = "events_per_s") -> float:
    return statistics.median(run[key] for run in runs)


def interleaved(
    contenders: Mapping[str, Callable[[], Run]],
    rounds: int,
    console: Console,
    key: str = "events_per_s",
) -> dict[str, list[Run]]:
    """Every contender once per round, in order, so that noise spreads over all of them."""
    runs: dict[str, list[Run]] = {name: [] for name in contenders}
    for round_no in range(1, rounds + 1):
        for name, run in contenders.items():
            outcome = run()
            runs[name].append(outcome)
            console.print(f"round {round_no}: {name}: {outcome[key]:,.0f} events/s")
    return runs


def profile_report(profiler: cProfile.Profile, top: int = 12) -> str:
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(top)
    return out.getvalue()


# --- machine, results ---------------------------------------------------------------------


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def machine() -> dict[str, object]:
    model = ""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        found = re.search(r"model name\s*:\s*(.+)", cpuinfo.read_text())
        model = found[1].strip() if found else ""
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "load_avg_at_start": load_average(),
        "python": platform.python_version(),
        "confluent_kafka": metadata.version("confluent-kafka"),
        "librdkafka": confluent_kafka.libversion()[0],
        "java": find_java().major_version,
        "kafka": KAFKA_VERSION,
    }


def results_path(name: str) -> Path:
    """``bench/results/<name>-<UTC stamp>.json``."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    return RESULTS / f"{name}-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}.json"


def write_results(
    name: str, payload: dict[str, Any], console: Console | None = None, out: Path | None = None
) -> Path:
    """``out`` or a new :func:`results_path`, with the command line and the end load."""
    out = out or results_path(name)
    body = {"command": " ".join([Path(sys.executable).name, *sys.argv]), **payload}
    found = body.get("machine")
    if isinstance(found, dict):
        found.setdefault("load_avg_at_end", load_average())
    out.write_text(json.dumps(body, indent=2))
    if console is not None:
        console.print(f"results: {out}")
    return out


# --- peak memory of a fresh process -------------------------------------------------------


def run_child(code: str, args: Sequence[str], timeout_s: float = 3600) -> dict[str, Any]:
    """Run ``code`` in a fresh interpreter; its last stdout line is JSON, returned as a dict.

    The snippet reports its own figures (e.g. ``ru_maxrss``: the peak RSS of that process and
    of nothing else, so the interpreter and imports are in it, other processes are not).
    """
    done = subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True, text=True, timeout=timeout_s, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"child failed:\n{done.stdout[-2000:]}{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


# --- the engine ---------------------------------------------------------------------------


class EngineProcess:
    """``python -m cart_pipeline.engine`` as a subprocess (as tests/conftest.py's helper).

    It gets SIGTERM if the benchmark dies (``die_with_parent``), so no engine is left behind.
    """

    def __init__(self, bootstrap: str, state_dir: Path, timeout_s: float = 120.0) -> None:
        self.port = proc.free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = state_dir / "engine.log"
        env = dict(os.environ)
        env.update({
            "CART_KSQL_BOOTSTRAP_SERVERS": bootstrap,
            "CART_KSQL_HOST": "127.0.0.1",
            "CART_KSQL_PORT": str(self.port),
            "CART_KSQL_STATE_DIR": str(state_dir),
        })  # fmt: skip
        self.pid: int | None = proc.spawn(
            [sys.executable, "-m", "cart_pipeline.engine"], self.log, env, die_with_parent=True
        )
        deadline = time.monotonic() + timeout_s
        while True:
            if not proc.is_alive(self.pid):
                raise RuntimeError(f"engine exited during start-up:\n{proc.tail(self.log)}")
            try:
                if httpx.get(f"{self.url}/healthcheck", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"engine not ready in {timeout_s}s:\n{proc.tail(self.log)}")
            time.sleep(0.2)

    def rss_mb(self) -> float:
        return float(psutil.Process(self.pid).memory_info().rss) / 2**20

    def stop(self) -> None:
        proc.stop(self.pid, "cart_pipeline.engine")
        self.pid = None


#: For child scripts (``run_child``): from where it stands, samples the summed RSS of this
#: process and its worker processes (forkserver: grandchildren) every 20 ms into
#: ``peak_tree`` (bytes) until ``done`` is set (then ``sampler.join()``). Put in by
#: ``with_tree_sampler``.
TREE_SAMPLER = """import threading, psutil
peak_tree = 0
done = threading.Event()

def sample():
    global peak_tree
    me = psutil.Process()
    while not done.wait(0.02):
        total = 0
        for p in [me, *me.children(recursive=True)]:
            try:
                total += p.memory_info().rss
            except psutil.Error:
                pass
        peak_tree = max(peak_tree, total)

sampler = threading.Thread(target=sample, daemon=True)
sampler.start()
"""


def with_tree_sampler(code: str) -> str:
    """``code`` with its ``# TREE_SAMPLER`` line replaced by ``TREE_SAMPLER``."""
    if "# TREE_SAMPLER\n" not in code:
        raise ValueError("no '# TREE_SAMPLER' line to replace")
    return code.replace("# TREE_SAMPLER\n", TREE_SAMPLER)
