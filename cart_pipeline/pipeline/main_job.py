"""The main job as a command runs it: materialize every asset through Dagster, then report.

Used by ``cart-pipeline demo`` (README's first command). With the embedded stack the
resources point at it; with CART_KAFKA_BOOTSTRAP_SERVERS / CART_KSQLDB_URL set they point
wherever those say (docker-compose, Confluent Cloud) — the same job either way.
"""

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg

from cart_pipeline.ksql import KsqlClient, KsqlError
from cart_pipeline.pipeline import ASSETS, resources_from_env
from cart_pipeline.pipeline.assets.reconciliation import ASSET as RECONCILIATION
from cart_pipeline.pipeline.assets.reconciliation import TOTALS_MATCH
from cart_pipeline.pipeline.ddl import CURRENT_SHOPPING_CART
from cart_pipeline.pipeline.resources import KsqlDBResource


@dataclass
class MainJobResult:
    success: bool
    run_id: str
    reconciliation: dict[str, Any] = field(default_factory=dict)
    checks: dict[str, tuple[bool, str]] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    carts: list[tuple[str, str, int]] = field(default_factory=list)

    @property
    def reconciled(self) -> bool:
        passed, _ = self.checks.get(TOTALS_MATCH, (False, ""))
        return self.success and passed


def dagster_instance(home: Path) -> dg.DagsterInstance:
    """DAGSTER_HOME when set; else a persistent instance beside the stack's data, so runs show
    up in `dagster dev` started with the same DAGSTER_HOME."""
    if os.environ.get("DAGSTER_HOME"):
        Path(os.environ["DAGSTER_HOME"]).expanduser().mkdir(parents=True, exist_ok=True)
    else:
        home.mkdir(parents=True, exist_ok=True)
        config = home / "dagster.yaml"
        if not config.exists():
            config.write_text("telemetry:\n  enabled: false\n")
        os.environ["DAGSTER_HOME"] = str(home)
    return dg.DagsterInstance.get()


def run_main_job(
    instance: dg.DagsterInstance,
    events: int,
    seed: int | None,
    lag_timeout_s: float = 120,
    log_level: str = "INFO",
) -> MainJobResult:
    resources = resources_from_env()
    load_config: dict[str, Any] = {"events": events}
    if seed is not None:
        load_config["seed"] = seed
    result = dg.materialize(
        ASSETS,
        resources=resources,
        instance=instance,
        run_config={
            "ops": {
                "cart_events_load": {"config": load_config},
                RECONCILIATION: {"config": {"lag_timeout_s": lag_timeout_s}},
            },
            "loggers": {"console": {"config": {"log_level": log_level}}},
        },
        raise_on_error=False,
        tags={"cart_pipeline/trigger": "cli"},
    )
    outcome = MainJobResult(success=result.success, run_id=result.run_id)
    materializations = result.asset_materializations_for_node(RECONCILIATION)
    if materializations:
        outcome.reconciliation = {k: v.value for k, v in materializations[-1].metadata.items()}
    for evaluation in result.get_asset_check_evaluations():
        outcome.checks[evaluation.check_name] = (evaluation.passed, evaluation.description or "")
    for failure in result.get_step_failure_events():
        data = failure.step_failure_data
        message = data.user_failure_data.description if data.user_failure_data else None
        if not message and data.error is not None:
            message = data.error.message.strip().splitlines()[0]
        outcome.failures.append(f"{failure.step_key}: {message}")
    ksqldb = resources["ksqldb"]
    assert isinstance(ksqldb, KsqlDBResource)
    # Outside a run, EnvVar fields are resolved explicitly.
    outcome.carts = biggest_carts(ksqldb.process_config_and_initialize())
    return outcome


def biggest_carts(ksqldb: KsqlDBResource, limit: int = 8) -> list[tuple[str, str, int]]:
    """A few cart lines from ksqlDB's view (a pull query), largest first."""
    try:
        with ksqldb.client() as ksql:
            rows = _rows(ksql)
    except KsqlError:
        return []
    return sorted(rows, key=lambda r: (-r[2], r[0], r[1]))[:limit]


def _rows(ksql: KsqlClient) -> list[tuple[str, str, int]]:
    result = ksql.query(f"SELECT * FROM {CURRENT_SHOPPING_CART.name};")
    index = {name.upper(): i for i, name in enumerate(result.column_names)}
    c, i, t = index["CUSTOMER"], index["ITEM"], index["TOTAL_QTY"]
    return [(row[c], row[i], row[t] or 0) for row in result.rows]
