"""Catalog of sources and queries, persisted as ksqlDB does: in the command topic."""
