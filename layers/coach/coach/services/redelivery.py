"""When a failed turn comes back: fast, with backoff, bounded (issue 9).

A record that failed comes back after `base * 2^(attempt-1)` seconds, at most `cap`, instead of after the
queue's whole visibility timeout; after the queue's maxReceiveCount receives SQS moves it to the dead-letter
queue. The template derives the function's timeout, the queue's visibility timeout, the receives and these
delays from one Mappings block (template.yaml, `Timing`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class RedeliveryPolicy:
    base_seconds: int = 10
    cap_seconds: int = 60

    def delay(self, receive_count: int) -> int:
        """Seconds before the next try of a record received `receive_count` times (1 for the first)."""
        return min(self.cap_seconds, self.base_seconds * (1 << max(0, receive_count - 1)))


class NotStarted(Exception):
    """Too little of the invocation was left to start this record: it goes back to the queue at once."""


@dataclass(frozen=True)
class InvocationBudget:
    """One record's share of a Lambda invocation: the LLM may take what is left minus `margin` (saving and
    sending need it), and a record with less than `start_at_least` left is not started."""

    remaining: Callable[[], float]  # seconds left in the invocation (the Lambda context's)
    margin: float = 20.0
    start_at_least: float = 25.0

    def time_left(self) -> float:
        return self.remaining() - self.margin

    def can_start(self) -> bool:
        return self.remaining() >= self.start_at_least
