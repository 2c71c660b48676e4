"""The one Dagster code location of cart_pipeline (assets arrive with the pipeline issue)."""

import dagster as dg

defs = dg.Definitions()
