"""The Dagster code location loads the way `dagster dev -w workspace.yaml` and `dg` load it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import dagster as dg
import yaml

from cart_pipeline.definitions import defs

REPO = Path(__file__).resolve().parents[1]


def test_definitions_are_loadable() -> None:
    dg.Definitions.validate_loadable(defs)


def test_workspace_loads_the_code_location() -> None:
    workspace = yaml.safe_load((REPO / "workspace.yaml").read_text())
    entry = workspace["load_from"][0]["python_module"]
    assert entry == {"module_name": "cart_pipeline.definitions", "location_name": "cart_pipeline"}


def test_dg_check_defs() -> None:
    done = subprocess.run(
        [str(Path(sys.executable).parent / "dg"), "check", "defs"],
        cwd=REPO, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
