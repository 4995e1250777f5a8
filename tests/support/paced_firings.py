"""Lambda's asynchronous event queue in front of a function with reserved concurrency, on a simulated clock:
what the prompt generator does with a minute's worth of firings, without threads or real time.

Each container runs one firing at a time and keeps its state (its pacer) between firings; the next firing
in the queue goes to the container free first. A firing that raises is tried again one and then two minutes
later, as Lambda does, and after that lands in the on-failure destination (`dead_lettered`). One clock
serves every container: it is set to a container's time before that container runs a firing, and the
container's pacer sleeps on it. Containers share nothing else, so running their firings one after another
on their own timelines gives what running them side by side would.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Generic, TypeVar

from coach.adapters.paced_sender import PacedSmsSender
from coach.ports import SmsSender
from tests.support.memory import ManualClock

E = TypeVar("E")

# Lambda's waits before its two retries of a failed asynchronous invocation.
RETRY_DELAYS = (timedelta(minutes=1), timedelta(minutes=2))


def paced_on(clock: ManualClock, sender: SmsSender, interval: float) -> PacedSmsSender:
    """A container's pacer on the simulated clock: its monotonic time is the clock's, its sleep moves the clock."""
    epoch = clock.now()

    def monotonic() -> float:
        return (clock.now() - epoch).total_seconds()

    def sleep(seconds: float) -> None:
        clock.advance(seconds=seconds)

    return PacedSmsSender(sender, interval, monotonic=monotonic, sleep=sleep)


@dataclass(frozen=True)
class Attempt(Generic[E]):
    """One run of a firing: which container, when it started and ended, and what it raised."""

    event: E
    container: int
    started: datetime
    ended: datetime
    attempt: int
    error: Exception | None = None


@dataclass
class AsyncInvocations(Generic[E]):
    """`run(container, event)` is one invocation on the clock (set to the container's time before it runs)."""

    clock: ManualClock
    containers: int
    run: Callable[[int, E], None]
    attempts: list[Attempt[E]] = field(default_factory=list)
    dead_lettered: list[E] = field(default_factory=list)

    def deliver(self, firings: Iterable[tuple[datetime, E]]) -> None:
        """Hand over `(due, event)` firings (Scheduler's invocations at their due times) and run them all."""
        order = itertools.count()
        queue: list[tuple[datetime, int, int, E]] = [(due, next(order), 0, event) for due, event in firings]
        heapq.heapify(queue)
        free_at = [min((due for due, *_ in queue), default=self.clock.now())] * self.containers
        runs = [0] * self.containers
        while queue:
            ready, _, attempt, event = heapq.heappop(queue)
            # The container free first; of those free together, the one that ran fewest (idle ones start too).
            container = min(range(self.containers), key=lambda n: (free_at[n], runs[n], n))
            runs[container] += 1
            started = self.clock.set(max(free_at[container], ready))
            error: Exception | None = None
            try:
                self.run(container, event)
            except Exception as exc:  # the invocation failed: Lambda tries again, then the destination
                error = exc
            ended = self.clock.now()
            free_at[container] = ended
            self.attempts.append(Attempt(event, container, started, ended, attempt, error))
            if error is None:
                continue
            if attempt < len(RETRY_DELAYS):
                heapq.heappush(queue, (ended + RETRY_DELAYS[attempt], next(order), attempt + 1, event))
            else:
                self.dead_lettered.append(event)
