"""Per-key comparison of ksqlDB's served totals with the recomputed ones."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

CartKey = tuple[str, str]

MISSING = "missing in ksqlDB"
EXTRA = "extra in ksqlDB"
DIFFERENT = "different total"


@dataclass(frozen=True)
class Discrepancy:
    customer: str
    item: str
    kind: str
    expected: int | None
    served: int | None

    @property
    def magnitude(self) -> int:
        return abs((self.expected or 0) - (self.served or 0))


@dataclass(frozen=True)
class Comparison:
    keys_compared: int
    matched: int
    discrepancies: tuple[Discrepancy, ...]
    excluded_in_flight: int = 0
    counts: Mapping[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.discrepancies

    @property
    def percent_match(self) -> float:
        return 100.0 if self.keys_compared == 0 else 100.0 * self.matched / self.keys_compared

    def worst(self, n: int = 20) -> list[Discrepancy]:
        return sorted(self.discrepancies, key=lambda d: (-d.magnitude, d.customer, d.item))[:n]

    def markdown(self, n: int = 20) -> str:
        """The worst ``n`` mismatches as a markdown table (shown in the Dagster UI)."""
        if self.ok:
            return f"All {self.keys_compared} keys match."
        lines = [
            "| customer | item | problem | expected | ksqlDB |",
            "|---|---|---|---:|---:|",
        ]
        for d in self.worst(n):
            lines.append(
                f"| {markdown_cell(d.customer)} | {markdown_cell(d.item)} | {d.kind} | "
                f"{_num(d.expected)} | {_num(d.served)} |"
            )
        hidden = len(self.discrepancies) - min(n, len(self.discrepancies))
        if hidden:
            lines.append(f"\n…and {hidden} more.")
        return "\n".join(lines)


def compare(
    expected: Mapping[CartKey, int],
    served: Mapping[CartKey, int],
    exclude: Iterable[CartKey] = (),
) -> Comparison:
    """Classify every key: matched, missing in ksqlDB, extra in ksqlDB, or different.

    ``exclude`` holds keys changed by events after the snapshot (in flight): the served value
    may already include them, so comparing those keys could report a mismatch that is not one.
    """
    skip = set(exclude)
    discrepancies: list[Discrepancy] = []
    matched = 0
    for key, total in expected.items():
        if key in skip:
            continue
        if key not in served:
            discrepancies.append(Discrepancy(*key, MISSING, total, None))
        elif served[key] != total:
            discrepancies.append(Discrepancy(*key, DIFFERENT, total, served[key]))
        else:
            matched += 1
    for key, total in served.items():
        if key not in expected and key not in skip:
            discrepancies.append(Discrepancy(*key, EXTRA, None, total))
    compared = len((expected.keys() | served.keys()) - skip)
    counts = {kind: sum(1 for d in discrepancies if d.kind == kind)
              for kind in (MISSING, EXTRA, DIFFERENT)}  # fmt: skip
    return Comparison(
        keys_compared=compared,
        matched=matched,
        discrepancies=tuple(discrepancies),
        excluded_in_flight=len(skip & (expected.keys() | served.keys())),
        counts=counts,
    )


def markdown_cell(text: str) -> str:
    """Markdown-safe: pipes and newlines in customer names must not break the table."""
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ").replace("\r", " ")


def _num(value: int | None) -> str:
    return "—" if value is None else str(value)
