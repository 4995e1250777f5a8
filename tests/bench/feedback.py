"""`python -m tests.bench feedback`: how well classify_feedback reads the labelled replies of
tests/unit/domain/feedback_examples.tsv (accuracy, precision and recall per kind, and each misread reply).

The table is also the floor that tests/unit/domain/test_feedback.py holds the classifier to.
"""

from __future__ import annotations

import csv
import os
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

from coach.domain.feedback import FeedbackKind, classify_feedback

EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(__file__)), "unit", "domain", "feedback_examples.tsv")
NONE = "none"  # the label of a reply that is no feedback at all
LABELS = (*(kind.value for kind in FeedbackKind), NONE)


@dataclass(frozen=True)
class Example:
    expected: str
    text: str


@dataclass(frozen=True)
class Misread:
    expected: str
    read: str
    text: str


def load_examples(path: str = EXAMPLES) -> list[Example]:
    """The table's rows; a label that is neither a kind nor "none" is a mistake in the table."""
    with open(path, encoding="utf-8", newline="") as table:
        rows = list(csv.DictReader(table, delimiter="\t", quoting=csv.QUOTE_NONE))
    unknown = sorted({row["expected"] for row in rows} - set(LABELS))
    if unknown:
        raise ValueError(f"{path}: unknown labels {unknown}; use one of {', '.join(LABELS)}")
    return [Example(row["expected"], row["text"]) for row in rows]


def label(text: str) -> str:
    found = classify_feedback(text)
    return found.kind.value if found else NONE


@dataclass(frozen=True)
class Score:
    pairs: tuple[tuple[Example, str], ...]  # each example with what the classifier read

    @classmethod
    def of(cls, examples: list[Example]) -> Score:
        return cls(tuple((example, label(example.text)) for example in examples))

    @cached_property
    def misread(self) -> list[Misread]:
        return [Misread(e.expected, read, e.text) for e, read in self.pairs if read != e.expected]

    @property
    def accuracy(self) -> float:
        return 1 - len(self.misread) / len(self.pairs)

    def counts(self) -> Counter[str]:
        return Counter(example.expected for example, _ in self.pairs)

    def precision(self, kind: str) -> float | None:
        read_as = [e for e, read in self.pairs if read == kind]
        return sum(e.expected == kind for e in read_as) / len(read_as) if read_as else None

    def recall(self, kind: str) -> float | None:
        labelled = [read for e, read in self.pairs if e.expected == kind]
        return sum(read == kind for read in labelled) / len(labelled) if labelled else None


def describe(misread: list[Misread]) -> str:
    return "\n".join(f"    expected {m.expected:<9} read {m.read:<9} {m.text!r}" for m in misread)


def report(show: Callable[[str, str, str], None]) -> None:
    """Prints through `show` (title, value, command), as the other benches do."""
    score = Score.of(load_examples())
    show(f"feedback accuracy on {len(score.pairs)} labelled replies", f"{score.accuracy:.1%}", "bench feedback")
    counts = score.counts()
    for kind in LABELS:
        shown = " / ".join(
            "-" if value is None else f"{value:.0%}" for value in (score.precision(kind), score.recall(kind))
        )
        show(f"  {kind} ({counts[kind]} replies): precision / recall", shown, "bench feedback")
    print(f"    {len(score.misread)} misread" + (f":\n{describe(score.misread)}" if score.misread else ""))
