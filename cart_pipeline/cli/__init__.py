"""``cart-pipeline``: the command line. Parses options, builds config, calls into the package."""

from cart_pipeline.cli.main import cli, main

__all__ = ["cli", "main"]
