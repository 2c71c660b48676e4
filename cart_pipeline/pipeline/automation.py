"""Jobs and the schedule: load events, keep the view, reconcile."""

from __future__ import annotations

import os

import dagster as dg

ALL_ASSETS = dg.AssetSelection.groups("events", "cart", "quality")

#: The main job: every asset, in dependency order. DDL assets are idempotent, so running it
#: again only loads and reconciles again.
cart_pipeline_job = dg.define_asset_job(
    "cart_pipeline_job",
    selection=ALL_ASSETS,
    description="Ensure the topic, stream and table; load synthetic events; reconcile.",
)

#: What the schedule runs: a load, then a reconciliation of the whole view.
load_and_reconcile_job = dg.define_asset_job(
    "load_and_reconcile_job",
    selection=dg.AssetSelection.assets("cart_events_load", "cart_reconciliation"),
    description="Load a batch of synthetic events and reconcile the totals.",
)

load_schedule = dg.ScheduleDefinition(
    name="scheduled_load",
    job=load_and_reconcile_job,
    cron_schedule=os.environ.get("CART_LOAD_SCHEDULE_CRON", "*/15 * * * *"),
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Scheduled loads (cron from CART_LOAD_SCHEDULE_CRON); stopped by default.",
)
