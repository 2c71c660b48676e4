"""Query runtime: serdes, expressions, aggregates, state stores and query loops."""
