"""README.md stays the manual: every CART_* setting the package reads is documented there.

Settings are found in the source, not listed by hand, so adding an environment variable
without documenting it fails here. Names are taken from string literals in code (not
docstrings: those hold examples such as ksqlDB column names) and from the engine's
``ENV_PREFIX + "NAME"`` / ``f"{ENV_PREFIX}NAME"`` spellings.
"""

from __future__ import annotations

import ast
import itertools
import re
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "cart_pipeline"
README = ROOT / "README.md"

NAME = re.compile(r"\bCART_[A-Z0-9_]*[A-Z0-9]\b")
PREFIX = re.compile(r"CART_[A-Z0-9_]*_")
LEADING_NAME = re.compile(r"[A-Z0-9_]*[A-Z0-9]")


def _docstrings(tree: ast.AST) -> set[int]:
    """ids of the Constant nodes that are docstrings (module, class, function)."""
    found: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                found.add(id(body[0].value))
    return found


def _prefixes(tree: ast.Module) -> dict[str, str]:
    """Module-level ``NAME = "CART_..._"`` assignments: env-var prefixes."""
    prefixes: dict[str, str] = {}
    for node in tree.body:
        if (
            isinstance(node, ast.Assign)
            and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str)
            and PREFIX.fullmatch(node.value.value)
        ):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    prefixes[target.id] = node.value.value
    return prefixes


def _prefixed(prefix: str, rest: object) -> Iterator[str]:
    if isinstance(rest, str) and (match := LEADING_NAME.match(rest)):
        yield prefix + match.group()


def names_in(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    docstrings = _docstrings(tree)
    prefixes = _prefixes(tree)
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            if id(node) not in docstrings:
                names.update(NAME.findall(node.value))
        elif (
            isinstance(node, ast.BinOp)
            and isinstance(node.op, ast.Add)
            and isinstance(node.left, ast.Name)
            and node.left.id in prefixes
            and isinstance(node.right, ast.Constant)
        ):
            names.update(_prefixed(prefixes[node.left.id], node.right.value))
        elif isinstance(node, ast.JoinedStr):
            for part, following in itertools.pairwise(node.values):
                if (
                    isinstance(part, ast.FormattedValue)
                    and isinstance(part.value, ast.Name)
                    and part.value.id in prefixes
                    and isinstance(following, ast.Constant)
                ):
                    names.update(_prefixed(prefixes[part.value.id], following.value))
    # A module-level prefix constant is not itself a setting.
    return names - set(prefixes.values())


def settings_in_source() -> dict[str, list[str]]:
    """Every CART_* name the package reads or tells users about -> files using it."""
    found: dict[str, list[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        for name in names_in(path):
            found.setdefault(name, []).append(str(path.relative_to(ROOT)))
    return found


def test_the_scan_finds_settings_of_every_kind() -> None:
    """Guards the scanner itself: plain literals, click envvars and the engine's prefix."""
    found = settings_in_source()
    for expected in ("CART_KSQLDB_URL", "CART_DEMO_EVENTS", "CART_KSQL_LOG_LEVEL",
                     "CART_KSQL_ALLOW_REMOTE", "CART_TAIL_LIMIT"):  # fmt: skip
        assert expected in found, expected
    assert "CART_EVENTS" not in found, "docstring examples are not settings"
    assert not any(name.endswith("_") for name in found)


def test_every_setting_is_documented_in_readme() -> None:
    readme = README.read_text()
    missing = {
        name: files for name, files in settings_in_source().items() if f"`{name}`" not in readme
    }
    assert not missing, (
        "settings read by the package but not documented in README.md (Configuration): "
        + ", ".join(
            f"{name} (used in {', '.join(files)})" for name, files in sorted(missing.items())
        )
    )


def test_quick_start_is_exactly_two_commands() -> None:
    readme = README.read_text()
    section = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    block = section.split("```bash\n", 1)[1].split("```", 1)[0]
    commands = [line.split("#")[0].strip() for line in block.splitlines() if line.strip()]
    assert commands == ["./dev demo", "./dev test"]


def test_readme_has_an_architecture_diagram() -> None:
    assert "```mermaid" in README.read_text()
