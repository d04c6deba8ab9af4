"""The parser's notes on what was wrong with a message, bounded."""

from __future__ import annotations

from dataclasses import dataclass, field

_MAX_DEFECTS = 100


@dataclass
class Defects:
    """Short defect notes, de-duplicated and capped (a hostile message can make thousands)."""

    items: list[str] = field(default_factory=list)

    def add(self, note: str) -> None:
        """Record ``note`` once, unless the cap is reached."""
        if note not in self.items and len(self.items) < _MAX_DEFECTS:
            self.items.append(note)
