"""10,000 nudges due at one minute, paced to the sender's rate: a projection with the real pacer on a simulated
clock, for a long code (1/s), a messaging service (10/s) and a short code (100/s).

Lambda's event queue hands the firings, in due order, to the prompt generator's reserved containers
(tests.support.paced_firings); each spends a nudge's work (our code's time, measured here on in-memory stores,
plus AWS's and Twilio's latency, assumed), then its PacedSmsSender waits for its turn. As the service does, a
firing past its window is recorded expired, and one whose window would close during the wait is not sent and
is recorded expired by Lambda's retry. Twilio then sends at its rate from its own queue: the figure that
matters is when the last nudge leaves Twilio, which must be within its window.

    python -m tests.bench.pacing
"""

from __future__ import annotations

import contextlib
import io
import math
import statistics
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from coach.domain.errors import SendWindowMissed
from coach.observability import logger, metrics
from coach.ports import SentSms
from coach.services.nudges import ScheduledEvent
from coach.settings import MAX_SEND_INTERVAL_SECONDS, PromptGeneratorSettings
from tests.support.conversation import START, harness
from tests.support.memory import ManualClock
from tests.support.paced_firings import AsyncInvocations, paced_on

NUDGES = 10_000
RATES = ((1.0, "long code"), (10.0, "messaging service"), (100.0, "short code"))
WINDOW = timedelta(minutes=PromptGeneratorSettings.model_fields["nudge_validity_minutes"].default)
DEFAULT_CONCURRENCY: int = PromptGeneratorSettings.model_fields["nudge_concurrency"].default
LAMBDA_MAXIMUM_EVENT_AGE = timedelta(hours=6)  # a firing's longest wait in Lambda's queue (the template's)
SLOT = datetime(2026, 6, 2, 11, 30, tzinfo=UTC)  # 07:30 in New York

# Assumed, not measured: in-region latency of one DynamoDB request, the requests of a nudge (issue 12's
# goal), and one Twilio Messages create call.
ASSUMED_AWS_REQUEST_SECONDS = 0.006
REQUESTS_PER_NUDGE = 4
ASSUMED_TWILIO_SECONDS = 0.25

INTAKE = ["yes", "physical activity", "to have more energy", "7:30am", "after my morning coffee", "no"]
COMMAND = "bench.pacing"


@dataclass
class Projection:
    rate: float
    containers: int
    window: timedelta
    sent: list[datetime] = field(default_factory=list)  # when each was handed to Twilio
    expired: int = 0
    late: int = 0  # handed to Twilio after its window: must stay 0
    dead_lettered: int = 0

    def leaves_twilio(self) -> list[datetime]:
        """When Twilio sends each, at its rate, from its queue (first come, first sent)."""
        gap, left, last = timedelta(seconds=1 / self.rate), [], SLOT - timedelta(days=1)
        for handed in sorted(self.sent):
            last = max(handed, last + gap)
            left.append(last)
        return left

    def busiest_minute(self) -> int:
        times, busiest, first = sorted(self.sent), 0, 0
        for last, at in enumerate(times):
            while at - times[first] >= timedelta(minutes=1):
                first += 1
            busiest = max(busiest, last - first + 1)
        return busiest


class _Twilio:
    """Takes every message (Twilio accepts faster than it sends; Projection.leaves_twilio queues them)."""

    def __init__(self, clock: ManualClock, projection: Projection) -> None:
        self.clock, self.projection = clock, projection

    def send(
        self,
        to: str,
        body: str,
        *,
        validity_seconds: int | None = None,
        callback_params: Mapping[str, str] | None = None,
        claimed: Callable[[str], bool] = lambda sid: False,
    ) -> SentSms:
        self.projection.sent.append(self.clock.now())
        return SentSms(sid="SM", status="queued", to=to, body=body)

    def find_sent(
        self, to: str, body: str, since: datetime, *, claimed: Callable[[str], bool] = lambda sid: False
    ) -> SentSms | None:
        return None


def project(rate: float, containers: int, work_seconds: float, window: timedelta, nudges: int = NUDGES) -> Projection:
    """`nudges` firings due at SLOT through `containers` paced containers sharing `rate`."""
    clock, projection = ManualClock(SLOT), Projection(rate, containers, window)
    valid_until = SLOT + window
    twilio = _Twilio(clock, projection)
    pacers = [paced_on(clock, twilio, containers / rate) for _ in range(containers)]

    def fire(container: int, nudge: int) -> None:
        clock.advance(seconds=work_seconds)  # load, decide, write the nudge, save the turn
        now = clock.now()
        if now >= valid_until:  # the engine (late firing) or the outbox (late send): recorded expired
            projection.expired += 1
            return
        pacers[container].send(
            f"+1{nudge:010d}", "nudge", validity_seconds=math.ceil((valid_until - now).total_seconds())
        )
        if clock.now() >= valid_until:
            projection.late += 1

    invocations: AsyncInvocations[int] = AsyncInvocations(clock, containers, fire)
    with _quiet():
        invocations.deliver((SLOT, n) for n in range(nudges))
    projection.dead_lettered = len(invocations.dead_lettered)
    assert all(isinstance(a.error, SendWindowMissed) for a in invocations.attempts if a.error is not None)
    return projection


def measured_nudge_seconds(participants: int = 20) -> float:
    """Our own code's time for one daily nudge (in-memory stores, offline coach), the mean of `participants`."""
    with _quiet(), harness("memory") as h:
        coached = []
        for n in range(participants):
            participant = h.enroll(phone=f"+1206555{n:04d}")
            for text in INTAKE:
                h.text(participant, text)
            coached.append(participant)
        h.clock.set(START.replace(hour=11, minute=30) + timedelta(days=1))
        service = h.build_nudges()
        timings = []
        for participant in coached:
            began = time.perf_counter()
            service.fire(ScheduledEvent(kind="daily_nudge", participant_id=participant.id, scheduled_time=SLOT))
            timings.append(time.perf_counter() - began)
        assert len([s for s in h.sms.sent if "coffee" in s.body]) >= participants, "every participant was nudged"
    return statistics.mean(timings)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """No log lines or metric blobs from the thousands of turns and sends in between the figures."""
    level = logger.log_level
    logger.setLevel("ERROR")
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
            metrics.clear_metrics()
    finally:
        logger.setLevel(level)


def containers_for(rate: float, work_seconds: float) -> int:
    """NudgeConcurrency for `rate`: the default, or enough containers that their work keeps up with the rate."""
    needed = max(DEFAULT_CONCURRENCY, math.ceil(rate * work_seconds))
    return min(needed, int(rate * MAX_SEND_INTERVAL_SECONDS))


def duration(delta: timedelta) -> str:
    seconds = round(delta.total_seconds())
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return " ".join(f"{n} {unit}" for n, unit in ((hours, "h"), (minutes, "min"), (seconds, "s")) if n) or "0 s"


Goal = Callable[[str, str, str, bool, str], None]


def report(show: Callable[[str, str, str], None], goal: Goal | None = None) -> None:
    """Prints through `show` (title, value, command), as the other benches do, and the figures of issue 12's
    table through `goal` (title, value, target, met, command)."""
    own = measured_nudge_seconds()
    work = own + REQUESTS_PER_NUDGE * ASSUMED_AWS_REQUEST_SECONDS + ASSUMED_TWILIO_SECONDS
    show("our code per nudge (in-memory stores, offline coach), mean", f"{own * 1000:.1f} ms", COMMAND)
    show(
        f"per nudge on AWS, projected (+{REQUESTS_PER_NUDGE} requests, Twilio {ASSUMED_TWILIO_SECONDS * 1000:.0f} ms)",
        f"{work * 1000:.0f} ms",
        COMMAND,
    )
    window = duration(WINDOW)
    for rate, sender in RATES:
        containers = containers_for(rate, work)
        paced = project(rate, containers, work, WINDOW)
        unbounded = project(rate, containers, work, LAMBDA_MAXIMUM_EVENT_AGE)
        label = f"{NUDGES:,} at 07:30, {rate:g}/s ({sender}), NudgeConcurrency {containers}"
        show(label, "", COMMAND)
        show(
            "  time to send them all, if their window allowed",
            duration(max(unbounded.leaves_twilio()) - SLOT),
            COMMAND,
        )
        show(
            f"  sent within the {window} window / recorded expired",
            f"{len(paced.sent):,} / {paced.expired:,}",
            COMMAND,
        )
        show(
            f"  last sent leaves Twilio after 07:30 (goal: within {window})",
            duration(max(paced.leaves_twilio()) - SLOT),
            COMMAND,
        )
        show(
            f"  busiest minute, messages (goal: <= {rate * 60:g} + {containers})",
            f"{paced.busiest_minute():,}",
            COMMAND,
        )
        title = f"  {NUDGES:,} at {rate:g}/s: sent after their window / lost"
        value = f"{paced.late} / {paced.dead_lettered}"
        if goal is None:
            show(f"{title} (goal: 0 / 0)", value, COMMAND)
        else:
            paced_ok = paced.late == 0 and paced.dead_lettered == 0 and paced.busiest_minute() <= rate * 60 + containers
            goal(title, value, "0 / 0, paced", paced_ok, COMMAND)
        assert len(paced.sent) + paced.expired == NUDGES, "every nudge is sent or recorded expired"
    print("    Lambda's queue hands firings over in due order here; on AWS its throttle retries may reorder them.")


def _show(title: str, value: str, command: str) -> None:
    print(f"{title:<72} {value:>16}   ({command})", flush=True)


if __name__ == "__main__":
    report(_show)
