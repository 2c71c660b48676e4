"""Loading conformance cases, and making their names unique so cases can run side by side.

A case's source and topic names get a numeric suffix (``TEST`` -> ``TEST__00000007``) in
statements, inputs and outputs; the runner removes the suffix from everything the engine
answers before comparing, so expected messages naming ``TEST`` still match.
"""

from __future__ import annotations

import itertools
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from cart_pipeline.engine.sql import ast, parse_statements
from cart_pipeline.engine.sql.lexer import Token, TokenKind, tokenize

UNSERVED_FORMATS = ("AVRO", "PROTOBUF", "PROTOBUF_NOSR", "JSON_SR")
_FORMAT_PROP = re.compile(
    r"\b(?:format|key_format|value_format)\s*=\s*'([A-Za-z_]+)'", re.IGNORECASE
)
_SUFFIX_RE = re.compile(r"__0\d{7}")
_counter = itertools.count(1)
_counter_lock = __import__("threading").Lock()


def conformance_dir() -> Path:
    env = os.environ.get("KSQL_CONFORMANCE_DIR")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[3].parent / "shared" / "ksql-conformance"


@dataclass
class Case:
    file: str  # e.g. "qtt/sum"
    name: str
    kind: str  # "qtt" | "rqtt"
    raw: dict[str, Any]
    statements: list[str]
    properties: dict[str, str] = field(default_factory=dict)

    @property
    def unserved_format(self) -> str | None:
        """A format the engine does not serve (counted unsupported without running)."""
        for stmt in self.statements:
            for m in _FORMAT_PROP.finditer(stmt):
                if m.group(1).upper() in UNSERVED_FORMATS:
                    return m.group(1).upper()
        for topic in self.raw.get("topics", []) or []:
            for key in ("keyFormat", "valueFormat", "format"):
                fmt = str(topic.get(key) or "").upper()
                if fmt in UNSERVED_FORMATS:
                    return fmt
        return None


def _prop_text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def load_cases(root: Path, files: list[str] | None = None) -> list[Case]:
    """Every enabled case of the selected files (`qtt/sum` or `sum`), formats expanded."""
    out: list[Case] = []
    for path in sorted(root.glob("*/*.json")):
        rel = f"{path.parent.name}/{path.stem}"
        if files and rel not in files and path.stem not in files:
            continue
        doc = orjson.loads(path.read_bytes())
        for raw in doc.get("tests", []):
            if raw.get("enabled") is False:
                continue
            props = {
                str(k): _prop_text(v)
                for src in ("properties", "config")
                if isinstance(raw.get(src), dict)
                for k, v in raw[src].items()
            }
            formats = raw.get("format") or [None]
            for fmt in formats:
                stmts = [
                    s.replace("{FORMAT}", fmt) if fmt else s for s in raw.get("statements", [])
                ]
                name = f"{raw['name']} - {fmt}" if fmt and len(formats) > 1 else raw["name"]
                if fmt and len(formats) == 1:
                    name = f"{raw['name']} - {fmt}"
                out.append(Case(rel, name, path.parent.name, raw, stmts, props))
    return out


def new_suffix() -> str:
    with _counter_lock:
        n = next(_counter)
    return f"__0{(os.getpid() * 1000 + n) % 10_000_000:07d}"


def strip_suffix(obj: Any) -> Any:
    """Remove every rename suffix from an engine answer (strings, recursively)."""
    if isinstance(obj, str):
        return _SUFFIX_RE.sub("", obj)
    if isinstance(obj, list):
        return [strip_suffix(v) for v in obj]
    if isinstance(obj, dict):
        return {strip_suffix(k): strip_suffix(v) for k, v in obj.items()}
    return obj


_SOURCE_CONTEXT = frozenset(
    {"FROM", "JOIN", "INTO", "STREAM", "TABLE", "EXISTS", "DESCRIBE", "EXTENDED"}
)


def _source_names(statements: list[str]) -> set[str]:
    names: set[str] = set()
    for text in statements:
        try:
            parsed = parse_statements(text)
        except Exception:
            continue
        for ps in parsed:
            if isinstance(ps.statement, ast.CreateSource | ast.CreateAsSelect):
                names.add(ps.statement.name)
    return names


def _quoted(tok: Token, value: str) -> str:
    q = tok.text[0]
    return q + value.replace(q, q + q) + q


def rename_statement(text: str, names: set[str], suffix: str) -> str:
    """Suffix source names (in source positions) and KAFKA_TOPIC values in one statement."""
    tokens = tokenize(text)
    upper = {n.upper() for n in names}
    edits: list[tuple[int, int, str]] = []
    for i, tok in enumerate(tokens):
        prev = tokens[i - 1] if i > 0 else None
        nxt = tokens[i + 1] if i + 1 < len(tokens) else None
        if tok.kind in (TokenKind.WORD, TokenKind.QUOTED_IDENTIFIER) and (
            tok.value.upper() in upper
        ):
            in_source_pos = (prev is not None and prev.is_word(*_SOURCE_CONTEXT)) or (
                nxt is not None and nxt.is_symbol(".")
            )
            if in_source_pos:
                new = (
                    tok.text + suffix
                    if tok.kind is TokenKind.WORD
                    else _quoted(tok, tok.value + suffix)
                )
                edits.append((tok.start, tok.end, new))
        elif (
            tok.kind is TokenKind.STRING
            and i >= 2
            and tokens[i - 1].is_symbol("=")
            and tokens[i - 2].is_word("KAFKA_TOPIC")
        ):
            edits.append((tok.start, tok.end, "'" + (tok.value + suffix).replace("'", "''") + "'"))
    for start, end, new in reversed(edits):
        text = text[:start] + new + text[end:]
    return text


def rename_case(statements: list[str], suffix: str) -> list[str]:
    names = _source_names(statements)
    return [rename_statement(s, names, suffix) for s in statements]
