"""Score priority decisions against labels: accuracy, per-class precision and recall, confusion."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sla.policy import Priority

if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = ["Evaluation"]


@dataclass(frozen=True, slots=True)
class Evaluation:
    """How often each label was decided as each priority."""

    confusion: Counter[tuple[Priority, Priority]]  # (label, decided) -> count

    @classmethod
    def of(cls, pairs: Iterable[tuple[Priority, Priority]]) -> Evaluation:
        """Count ``(label, decided)`` pairs."""
        return cls(Counter(pairs))

    @property
    def examples(self) -> int:
        """How many decisions were scored."""
        return sum(self.confusion.values())

    @property
    def correct(self) -> int:
        """How many decisions matched their label."""
        return sum(self.confusion[p, p] for p in Priority)

    @property
    def accuracy(self) -> float:
        """The share of decisions that matched their label (0 with no examples)."""
        return self.correct / self.examples if self.examples else 0.0

    @property
    def high_as_low(self) -> int:
        """Real Highs decided Low: the costliest error."""
        return self.confusion[Priority.HIGH, Priority.LOW]

    def precision(self, priority: Priority) -> float:
        """Of the decisions ``priority``, the share labelled so (0 when none was decided)."""
        decided = sum(self.confusion[label, priority] for label in Priority)
        return self.confusion[priority, priority] / decided if decided else 0.0

    def recall(self, priority: Priority) -> float:
        """Of the examples labelled ``priority``, the share decided so (0 when none)."""
        support = self.support(priority)
        return self.confusion[priority, priority] / support if support else 0.0

    def support(self, priority: Priority) -> int:
        """How many examples carry the label ``priority``."""
        return sum(self.confusion[priority, decided] for decided in Priority)

    def to_json(self) -> dict[str, Any]:
        """The figures as JSON: ``confusion`` is label -> decided -> count."""
        return {
            "examples": self.examples,
            "accuracy": round(self.accuracy, 4),
            "high_as_low": self.high_as_low,
            "per_class": {
                p.value: {
                    "precision": round(self.precision(p), 4),
                    "recall": round(self.recall(p), 4),
                    "support": self.support(p),
                }
                for p in Priority
            },
            "confusion": {
                label.value: {decided.value: self.confusion[label, decided] for decided in Priority}
                for label in Priority
            },
        }

    def lines(self) -> list[str]:
        """The figures for a reader: accuracy, each class, the confusion matrix."""
        out = [f"examples: {self.examples}"]
        out.append(f"accuracy: {self.accuracy:.3f} ({self.correct}/{self.examples})")
        out.extend(
            f"  {p.value:<6}  precision {self.precision(p):.3f}  "
            f"recall {self.recall(p):.3f}  (n={self.support(p)})"
            for p in Priority
        )
        out.append("confusion (rows: label, columns: decided):")
        out.append(" " * 10 + "".join(f"{p.value:>8}" for p in Priority))
        out.extend(
            f"  {label.value:<8}" + "".join(f"{self.confusion[label, d]:>8}" for d in Priority)
            for label in Priority
        )
        out.append(f"high as low: {self.high_as_low}")
        return out
