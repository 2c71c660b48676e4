"""README's first command: `cart-pipeline demo` runs the whole pipeline and reports."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.pipeline.conftest import reset_pipeline_objects

pytestmark = pytest.mark.timeout(600)


def demo(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "cart_pipeline.cli", "demo", *args],
        env=env, capture_output=True, text=True, timeout=500, check=False,
    )  # fmt: skip


@pytest.fixture
def env(kafka_bootstrap: str, ksqldb_url: str, tmp_path: Path) -> dict[str, str]:
    reset_pipeline_objects(kafka_bootstrap, ksqldb_url)
    return {
        **os.environ,
        "CART_KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "CART_KSQLDB_URL": ksqldb_url,
        "CART_HOME": str(tmp_path / "home"),
        "DAGSTER_HOME": str(tmp_path / "dagster"),
        "COLUMNS": "160",
    }


def test_demo_runs_the_pipeline_twice_and_reconciles(env: dict[str, str], tmp_path: Path) -> None:
    first = demo(env, "--events", "2000", "--seed", "3")
    assert first.returncode == 0, first.stdout + first.stderr
    assert "The totals reconcile." in first.stdout
    assert "status            │ match" in first.stdout or "│ match" in first.stdout
    assert "Some carts" in first.stdout
    # Twice: idempotent DDL, the totals still reconcile (now over both loads).
    second = demo(env, "--events", "1000", "--seed", "4")
    assert second.returncode == 0, second.stdout + second.stderr
    # The second reconciliation is incremental: it reads the new events only.
    assert re.search(r"mode\s+│\s+incremental", second.stdout), second.stdout
    assert re.search(r"events read\s+│\s+1000 ", second.stdout), second.stdout
    assert re.search(r"events total\s+│\s+3000 ", second.stdout), second.stdout
    # The runs are in the Dagster instance the UI would show.
    assert any((tmp_path / "dagster").iterdir())


def test_demo_exits_non_zero_when_totals_do_not_reconcile(
    env: dict[str, str], ksqldb_url: str
) -> None:
    from cart_pipeline.ksql import KsqlClient

    assert demo(env, "--events", "500", "--seed", "5").returncode == 0
    with KsqlClient(ksqldb_url) as ksql:  # the view loses its history
        ksql.execute("DROP TABLE current_shopping_cart DELETE TOPIC;")
        ksql.execute(
            "SET 'auto.offset.reset'='latest';\n"
            "CREATE TABLE current_shopping_cart WITH (KEY_FORMAT='JSON') AS SELECT customer, "
            "item, SUM(qty) as total_qty FROM shopping_cart_events GROUP BY customer, item "
            "EMIT CHANGES;"
        )
    failed = demo(env, "--events", "500", "--seed", "6", "--lag-timeout", "15")
    assert failed.returncode == 1, failed.stdout
    assert "do not reconcile" in failed.stdout
    assert "Traceback" not in failed.stdout + failed.stderr
