"""A local stack in this process whose functions are stand-ins, with the queue pumps, the scheduler emulator
and the clock endpoints: what the emulator's tests fire schedules against."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager

from infra.local import LocalConfig, LocalStack
from infra.local.clock import ClockExtension
from infra.local.functions import Handler
from infra.local.pump import QueuePumpExtension
from infra.local.scheduler import AdvancingClock, SchedulerExtension


@contextmanager
def stack_with_stand_ins(
    clock: AdvancingClock,
    handlers: Mapping[str, Handler],
    *,
    before_start: Callable[[LocalStack], None] = lambda stack: None,
) -> Iterator[tuple[LocalStack, SchedulerExtension]]:
    """`handlers` replace the template's functions by logical id; `before_start` sees the stack first (the
    stand-ins keep it, to reach moto from inside a firing)."""
    scheduler = SchedulerExtension(clock=clock, pumps=QueuePumpExtension(redelivery_delay_seconds=0))
    assert scheduler.pumps is not None
    running = LocalStack(
        LocalConfig(port=0),
        extensions=[scheduler.pumps, scheduler, ClockExtension(scheduler)],
        # The template's hourly retention job fires too; with `environ={}` the real one could not read its settings.
        handlers={"RetentionFunction": _retention_stand_in, **handlers},
        environ={},
        log=io.StringIO(),
    )
    before_start(running)
    running.start()
    try:
        yield running, scheduler
    finally:
        running.stop()


def _retention_stand_in(event: Mapping[str, object], context: object) -> dict[str, str]:
    return {"skipped": "stand-in"}
