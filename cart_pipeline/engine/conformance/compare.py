"""Comparison rules of ksqlDB's test executors: only expected keys, `|starts_with` prefixes."""

from __future__ import annotations

import re
from typing import Any

STARTS_WITH = "|starts_with"


def same_value(expected: Any, actual: Any) -> bool:
    """JSON equality that keeps booleans apart from numbers (1 == 1.0, True != 1)."""
    if isinstance(expected, bool) or isinstance(actual, bool):
        return type(expected) is type(actual) and expected == actual
    if isinstance(expected, int | float) and isinstance(actual, int | float):
        return float(expected) == float(actual)
    if isinstance(expected, dict) and isinstance(actual, dict):
        return expected.keys() == actual.keys() and all(
            same_value(v, actual[k]) for k, v in expected.items()
        )
    if isinstance(expected, list) and isinstance(actual, list):
        return len(expected) == len(actual) and all(
            same_value(e, a) for e, a in zip(expected, actual, strict=True)
        )
    return bool(expected == actual)


def matches(expected: Any, actual: Any, path: str = "$") -> str | None:
    """None when `actual` has what `expected` states (keys absent from `expected` ignored)."""
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return f"{path}: expected an object, got {actual!r}"
        for key, want in expected.items():
            if key.endswith(STARTS_WITH):
                name = key[: -len(STARTS_WITH)]
                got = actual.get(name)
                if not isinstance(got, str) or not got.startswith(str(want)):
                    return f"{path}.{name}: expected to start with {want!r}, got {got!r}"
                continue
            if key not in actual:
                return f"{path}.{key}: missing (expected {want!r})"
            problem = matches(want, actual[key], f"{path}.{key}")
            if problem:
                return problem
        return None
    if isinstance(expected, list):
        if not isinstance(actual, list) or len(actual) != len(expected):
            return f"{path}: expected {expected!r}, got {actual!r}"
        for i, (e, a) in enumerate(zip(expected, actual, strict=True)):
            problem = matches(e, a, f"{path}[{i}]")
            if problem:
                return problem
        return None
    return (
        None if same_value(expected, actual) else f"{path}: expected {expected!r}, got {actual!r}"
    )


_TYPE_ALIASES = {"INT": "INTEGER", "VARCHAR": "STRING"}


def normalize_schema(text: str) -> str:
    """`ID` INT KEY, `x` VARCHAR -> ID INTEGER KEY, x STRING (PRIMARY KEY -> KEY)."""
    out = text.replace("`", "").replace("PRIMARY KEY", "KEY")
    out = re.sub(r"\s+", " ", out).strip()
    out = re.sub(r"\b(INT|VARCHAR)\b", lambda m: _TYPE_ALIASES[m.group(1)], out)
    out = re.sub(r"\s*,\s*", ", ", out)
    out = re.sub(r"\s*<\s*", "<", out)
    out = re.sub(r"\s*>", ">", out)
    return out


def type_text(schema: dict[str, Any]) -> str:
    """ksqlDB SchemaInfo -> SQL type text."""
    t = str(schema.get("type"))
    if t == "DECIMAL":
        p = schema.get("parameters") or {}
        return f"DECIMAL({p.get('precision')}, {p.get('scale')})"
    if t == "ARRAY":
        return f"ARRAY<{type_text(schema['memberSchema'])}>"
    if t == "MAP":
        return f"MAP<STRING, {type_text(schema['memberSchema'])}>"
    if t == "STRUCT":
        inner = ", ".join(
            f"{f['name']} {type_text(f['schema'])}" for f in schema.get("fields") or []
        )
        return f"STRUCT<{inner}>"
    return t


def describe_schema(fields: list[dict[str, Any]]) -> str:
    parts = []
    for f in fields:
        key = " KEY" if f.get("type") == "KEY" else ""
        parts.append(f"{f['name']} {type_text(f['schema'])}{key}")
    return ", ".join(parts)
