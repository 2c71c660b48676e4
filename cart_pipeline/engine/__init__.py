"""Embedded ksqlDB-compatible engine: SQL front end, catalog, runtime and REST server."""

from __future__ import annotations

from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> None:
    """Run the engine (blocking) with CLI arguments `argv` (default: sys.argv[1:]).

    Options also come from CART_KSQL_* environment variables; see `engine.config`.
    """
    from cart_pipeline.engine.config import cli

    cli.main(args=list(argv) if argv is not None else None, prog_name="cart-ksql")
