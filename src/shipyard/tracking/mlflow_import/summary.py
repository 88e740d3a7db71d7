"""What an import did: how many of each thing it copied, found already there, and what it
skipped with the reason."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

# progress(phase, done, total): "runs", 40, 301; total None while unknown
Progress = Callable[[str, int, int | None], None]


@dataclass(frozen=True)
class Skipped:
    kind: str  # "run", "artifact", "model version", "alias", …
    what: str
    why: str


@dataclass
class ImportSummary:
    source: str
    copied: Counter[str] = field(default_factory=Counter)
    unchanged: Counter[str] = field(default_factory=Counter)
    skipped: list[Skipped] = field(default_factory=list)
    notes: list[Skipped] = field(default_factory=list)  # copied, with something to know

    def skip(self, kind: str, what: str, why: str) -> None:
        self.skipped.append(Skipped(kind, what, why))

    def note(self, kind: str, what: str, why: str) -> None:
        self.notes.append(Skipped(kind, what, why))

    @property
    def copied_anything(self) -> bool:
        return sum(self.copied.values()) > 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "copied": dict(self.copied),
            "unchanged": dict(self.unchanged),
            "skipped": [s.__dict__ for s in self.skipped],
            "notes": [s.__dict__ for s in self.notes],
        }

    def lines(self) -> list[str]:
        """The summary as a person reads it: counts, then each reason with how often."""
        out = [f"imported from {self.source}"]
        copied = ", ".join(f"{n} {k}" for k, n in self.copied.items() if n) or "nothing"
        out.append(f"copied: {copied}")
        if self.unchanged:
            already = ", ".join(f"{n} {k}" for k, n in self.unchanged.items() if n)
            out.append(f"already there: {already}")
        out += _grouped("skipped", self.skipped)
        out += _grouped("note: copied", self.notes)
        return out


def _grouped(label: str, items: list[Skipped]) -> list[str]:
    """One line per (kind, reason), with how many and a few examples."""
    out = []
    reasons = Counter((s.kind, s.why) for s in items)
    for (kind, why), n in reasons.items():
        examples = [s.what for s in items if (s.kind, s.why) == (kind, why)][:3]
        more = ", …" if n > len(examples) else ""
        out.append(f"{label} {n} {kind}: {why} ({', '.join(examples)}{more})")
    return out
