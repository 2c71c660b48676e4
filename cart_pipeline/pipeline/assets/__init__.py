"""The pipeline's assets, grouped by domain: events (the log), cart (the view), quality."""
# Dagster infers config and resource types from annotations at runtime: no postponed annotations.
