"""The one Dagster code location of cart_pipeline."""

import dagster as dg

from cart_pipeline.pipeline import (
    ASSETS,
    cart_pipeline_job,
    data_quality_alerts,
    load_and_reconcile_job,
    load_schedule,
    resources_from_env,
)

defs = dg.Definitions(
    assets=ASSETS,
    jobs=[cart_pipeline_job, load_and_reconcile_job],
    schedules=[load_schedule],
    sensors=[data_quality_alerts],
    resources=resources_from_env(),
)
