"""Time budgets for tests: deterministic, no clock and no sleeping."""

from __future__ import annotations


class Countdown:
    """A `time_left()` that has time for `steps` looks, then none: each look at the time left costs one step."""

    def __init__(self, steps: int) -> None:
        self.steps = steps
        self.looks = 0

    def __call__(self) -> float:
        self.looks += 1
        return float(self.steps - self.looks + 1)


class CrashAfter(Countdown):
    """A `time_left()` whose invocation dies (ConnectionError) at look number `steps + 1`, in the middle of the
    work it paces, as a Lambda whose connection or container is lost."""

    def __call__(self) -> float:
        left = super().__call__()
        if left <= 0:
            raise ConnectionError("the invocation died (simulated)")
        return left
