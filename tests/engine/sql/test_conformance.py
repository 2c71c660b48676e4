"""Every statement of ksqlDB's own test cases parses; expected syntax errors fail alike.

The cases live outside the repository (``../shared/ksql-conformance`` next to the repo, or
``$KSQL_CONFORMANCE_DIR``) and are read at test time; without them these tests are skipped.
Only the parse is checked here: whether the engine then accepts or refuses a statement is the
engine's business. QTT statements of a case are sent as one request (joined by newlines, so
error lines count across statements); an RQTT query is sent on its own.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from cart_pipeline.engine.sql import ParseError, parse_statements

REPO = Path(__file__).resolve().parents[3]


def conformance_dir() -> Path | None:
    configured = os.environ.get("KSQL_CONFORMANCE_DIR")
    folder = Path(configured) if configured else REPO.parent / "shared" / "ksql-conformance"
    return folder if folder.is_dir() else None


def case_files() -> list[Path]:
    folder = conformance_dir()
    if folder is None:
        return []
    return sorted([*folder.glob("qtt/*.json"), *folder.glob("rqtt/*.json")])


def expects_syntax_error(case: dict[str, Any]) -> str | None:
    expected = case.get("expectedException") or case.get("expectedError") or {}
    message: str = expected.get("message", "")
    if "Syntax Error" in message or "ParseFailedException" in expected.get("type", ""):
        return message
    return None


def statement_sets(case: dict[str, Any]) -> list[list[str]]:
    formats = case.get("format") or [None]
    return [
        [s.replace("{FORMAT}", f) if f else s for s in case.get("statements", [])] for f in formats
    ]


FILES = case_files()


@pytest.mark.skipif(not FILES, reason="ksqlDB conformance cases not found")
@pytest.mark.parametrize("path", FILES, ids=[f"{p.parent.name}/{p.stem}" for p in FILES])
def test_conformance_file_parses(path: Path) -> None:
    failures: list[str] = []
    for case in json.loads(path.read_text())["tests"]:
        if case.get("enabled") is False:
            continue
        expected_error = expects_syntax_error(case)
        for statements in statement_sets(case):
            if expected_error is not None:
                request = statements[-1] if path.parent.name == "rqtt" else "\n".join(statements)
                try:
                    parse_statements(request)
                    failures.append(f"{case['name']}: parsed, expected {expected_error!r}")
                except ParseError as error:
                    if expected_error not in error.message:
                        failures.append(
                            f"{case['name']}: {error.message!r} does not contain {expected_error!r}"
                        )
                continue
            for statement in statements:
                try:
                    parse_statements(statement)
                except ParseError as error:
                    failures.append(f"{case['name']}: {error.message}")

    assert not failures, "\n".join(failures)


def test_missing_conformance_folder_skips_rather_than_fails(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("KSQL_CONFORMANCE_DIR", str(tmp_path / "absent"))

    assert conformance_dir() is None
