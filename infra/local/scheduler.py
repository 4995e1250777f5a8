"""EventBridge Scheduler, locally: fire the schedules the handlers created in moto when they fall due.

moto stores schedules but never fires them. The emulator keeps the moment it last checked; on each tick
(every second of real time) and on each advance of the virtual clock it lists the schedule group's
schedules, works out what fell due since (infra/local/aws_cron.py: AWS's cron, rate and at() in the
schedule's timezone) and invokes the target function with the schedule's Target.Input, oldest first
across schedules. As on AWS: a DISABLED schedule does not fire, a one-time schedule fires once and, with
ActionAfterCompletion DELETE, is deleted after firing; StartDate and EndDate bound recurring schedules.
Unlike AWS there are no retries: a failed invocation is logged and reported, and the emulator carries on.

`advance(delta)` moves the virtual clock forward one due firing at a time, so what a firing schedules
inside the span (a nudge's reminder five hours later) fires too, each at its own time.
"""

from __future__ import annotations

import json
import sys
import threading
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

import boto3
from botocore.exceptions import ClientError

from infra.local.aws_cron import At, Rate, ScheduleExpressionError, Timing, parse
from infra.local.resources import FAKE_CREDENTIALS

if TYPE_CHECKING:
    from infra.local.pump import QueuePumpExtension
    from infra.local.stack import LocalStack

# A firing that keeps scheduling new due work would otherwise hold an advance forever.
MAX_FIRINGS_PER_RUN = 10_000
DRAIN_TIMEOUT_SECONDS = 30.0


class AdvancingClock(Protocol):
    """coach.adapters.clock.VirtualClock, as the emulator uses it."""

    def now(self) -> datetime: ...
    def advance(self, delta: timedelta) -> datetime: ...


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class Firing:
    """One invocation of a schedule's target, as `POST /_local/clock/advance` reports it."""

    schedule: str
    at: datetime  # when it was due
    kind: str | None
    participant_id: str | None
    result: str  # "ok" or "error: ..."

    def as_json(self) -> dict[str, Any]:
        return {
            "schedule": self.schedule,
            "at": iso(self.at),
            "kind": self.kind,
            "participant_id": self.participant_id,
            "result": self.result,
        }


@dataclass(frozen=True)
class Schedule:
    """What firing needs of GetSchedule's answer. `version` tells one edit of a schedule from the next."""

    group: str
    name: str
    timing: Timing
    target_arn: str
    input: str | None
    enabled: bool
    delete_after: bool
    start: datetime | None
    end: datetime | None
    version: tuple[str, str, str]

    @classmethod
    def from_api(cls, answer: Mapping[str, Any], version: tuple[str, str, str]) -> Schedule:
        target = answer.get("Target") or {}
        return cls(
            group=answer.get("GroupName") or "default",
            name=answer["Name"],
            timing=parse(answer["ScheduleExpression"], answer.get("ScheduleExpressionTimezone")),
            target_arn=target.get("Arn", ""),
            input=target.get("Input"),
            enabled=answer.get("State") != "DISABLED",
            delete_after=answer.get("ActionAfterCompletion") == "DELETE",
            start=answer.get("StartDate"),
            end=answer.get("EndDate"),
            version=version,
        )


Invoke = Callable[[str, Any], Any]  # (target ARN, event) -> the function's result; raises what it raised


class SchedulerEmulator:
    """A BackgroundService: ticks every `tick_seconds`; `check()` and `advance()` fire what fell due."""

    name = "scheduler emulator"

    def __init__(
        self,
        client: Any,
        groups: tuple[str, ...],
        invoke: Invoke,
        clock: AdvancingClock,
        *,
        drain: Callable[[float], None] | None = None,
        tick_seconds: float = 1.0,
        log: Callable[[str], None] | None = None,
    ) -> None:
        """`drain(timeout)`: wait until the work a firing queued is handled, so its texts go out before the
        next firing (the queue pump's drain)."""
        self.clock = clock
        self.groups = groups
        self._client = client
        self._invoke = invoke
        self._drain = drain
        self._tick_seconds = tick_seconds
        self._log = log or (lambda line: print(line, file=sys.stderr, flush=True))
        self._lock = threading.Lock()  # one check or advance at a time: each moves _last_check
        self._last_check = clock.now()
        self._details: dict[tuple[str, str, str], Schedule | None] = {}  # None: an expression AWS would refuse
        self._fired_once: set[tuple[str, str, str]] = set()  # one-time schedules that fired and were kept
        self._first_seen: dict[tuple[str, str, str], datetime] = {}  # a rate's start when it has no StartDate
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    # --- BackgroundService -------------------------------------------------------------------------
    def start(self) -> None:
        self._stopping.clear()
        self._thread = threading.Thread(target=self._tick_forever, name=self.name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._stopping.set()
            self._thread.join(timeout=60)
            self._thread = None

    def _tick_forever(self) -> None:
        while not self._stopping.wait(self._tick_seconds):
            try:
                self.check()
            except Exception:  # moto hiccup or a bug: say so and keep ticking, as a scheduler must
                traceback.print_exc(file=sys.stderr)

    # --- what the clock endpoints and tests use -----------------------------------------------------
    @property
    def last_check(self) -> datetime:
        with self._lock:
            return self._last_check

    def check(self) -> list[Firing]:
        """Fire what fell due between the last check and now."""
        with self._lock:
            until = self.clock.now()
            fired = self._run_until(until, move_clock=False)
            self._last_check = max(self._last_check, until)
            return fired

    def advance(self, delta: timedelta) -> list[Firing]:
        """Move the clock forward by `delta`, stopping at each due firing in turn; what fired, in order."""
        if delta <= timedelta(0):
            raise ValueError("the clock only moves forward")
        with self._lock:
            until = self.clock.now() + delta
            fired = self._run_until(until, move_clock=True)
            self._move_clock_to(until)
            self._last_check = max(self._last_check, until)
            return fired

    # --- the work ------------------------------------------------------------------------------------
    def _run_until(self, until: datetime, *, move_clock: bool) -> list[Firing]:
        fired: list[Firing] = []
        # Listed again after every firing: a firing creates, updates and deletes schedules.
        while (due := self._next_due(until)) is not None:
            when, batch = due
            if move_clock:
                self._move_clock_to(when)
            fired.extend(self._fire(schedule, when) for schedule in batch)
            self._last_check = max(self._last_check, when)
            if len(fired) >= MAX_FIRINGS_PER_RUN:
                self._log(f"{self.name}: stopped after {len(fired)} firings up to {iso(when)}")
                break
        return fired

    def _next_due(self, until: datetime) -> tuple[datetime, list[Schedule]] | None:
        """The earliest due moment up to `until` and every schedule due then (by name), or None."""
        earliest: datetime | None = None
        batch: list[Schedule] = []
        for schedule in self._schedules():
            when = self._due_time(schedule, until)
            if when is None or (earliest is not None and when > earliest):
                continue
            if earliest is None or when < earliest:
                earliest, batch = when, []
            batch.append(schedule)
        return None if earliest is None else (earliest, sorted(batch, key=lambda s: (s.group, s.name)))

    def _due_time(self, schedule: Schedule, until: datetime) -> datetime | None:
        if not schedule.enabled:
            return None
        timing = schedule.timing
        if isinstance(timing, At):
            # Due once its time has come, even if that was before the last check (created with a past
            # time, or while a firing ran): it has not fired yet, and it exists to fire once.
            due = None if schedule.version in self._fired_once else timing.when
        else:
            after = self._last_check
            if schedule.start is not None and schedule.start > after:
                after = schedule.start - timedelta(microseconds=1)  # StartDate itself may be an occurrence
            origin = schedule.start
            if origin is None and isinstance(timing, Rate):  # AWS starts a rate when it is created
                origin = self._first_seen.setdefault(schedule.version, self.clock.now())
            due = timing.next_after(after, origin)
            if due is not None and schedule.end is not None and due > schedule.end:
                return None
        return due if due is not None and due <= until else None

    def _schedules(self) -> list[Schedule]:
        """The groups' schedules, each fetched once per version (ListSchedules does not carry the expression)."""
        found: list[Schedule] = []
        seen: set[tuple[str, str, str]] = set()
        for group in self.groups:
            for summary in self._list(group):
                version = (group, summary["Name"], str(summary.get("LastModificationDate")))
                seen.add(version)
                if version not in self._details:
                    self._details[version] = self._fetch(group, summary["Name"], version)
                schedule = self._details[version]
                if schedule is not None:
                    found.append(schedule)
        for gone in self._details.keys() - seen:
            del self._details[gone]
            self._first_seen.pop(gone, None)
        return found

    def _list(self, group: str) -> list[dict[str, Any]]:
        summaries: list[dict[str, Any]] = []
        request: dict[str, Any] = {"GroupName": group}
        while True:
            page = self._client.list_schedules(**request)
            summaries.extend(page.get("Schedules", []))
            if not page.get("NextToken"):
                return summaries
            request["NextToken"] = page["NextToken"]

    def _fetch(self, group: str, name: str, version: tuple[str, str, str]) -> Schedule | None:
        try:
            answer = self._client.get_schedule(Name=name, GroupName=group)
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ResourceNotFoundException":
                return None  # deleted between the list and now; the next listing drops it
            raise
        try:
            return Schedule.from_api(answer, version)
        except ScheduleExpressionError as exc:
            # moto took it; EventBridge Scheduler would have refused it at CreateSchedule.
            self._log(f"{self.name}: schedule {name} never fires: {exc}")
            return None

    def _fire(self, schedule: Schedule, when: datetime) -> Firing:
        event: Any = None
        try:
            event = json.loads(schedule.input) if schedule.input else {}
            self._invoke(schedule.target_arn, event)
            result = "ok"
        except json.JSONDecodeError:
            result = "error: the schedule's Target.Input is not JSON"
        except Exception as exc:  # the target failed: Lambda would report it; we log it and go on
            traceback.print_exc(file=sys.stderr)
            result = f"error: {type(exc).__name__}: {exc}"
        if isinstance(schedule.timing, At):
            self._fired_once.add(schedule.version)
            if schedule.delete_after:
                self._delete(schedule)
        self._drain_queue()
        details = event if isinstance(event, dict) else {}
        firing = Firing(schedule.name, when, details.get("kind"), details.get("participant_id"), result)
        self._log(f"{self.name}: {schedule.name} ({firing.kind or '-'}) due {iso(when)} -> {result}")
        return firing

    def _delete(self, schedule: Schedule) -> None:
        try:
            self._client.delete_schedule(Name=schedule.name, GroupName=schedule.group)
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ResourceNotFoundException":  # the target deleted it itself
                self._log(f"{self.name}: could not delete {schedule.name}: {exc}")

    def _drain_queue(self) -> None:
        if self._drain is None:
            return
        try:
            self._drain(DRAIN_TIMEOUT_SECONDS)
        except TimeoutError as exc:
            self._log(f"{self.name}: the queue did not drain after a firing: {exc}")

    def _move_clock_to(self, moment: datetime) -> None:
        gap = moment - self.clock.now()
        if gap > timedelta(0):
            self.clock.advance(gap)


def function_invoker(stack: LocalStack) -> Invoke:
    """Invoke the template's function a schedule targets, by its ARN (a version or alias suffix is ignored)."""
    by_arn = {function.arn: function for function in stack.functions.values()}

    def invoke(arn: str, event: Any) -> Any:
        function = by_arn.get(arn) or next((f for a, f in by_arn.items() if arn.startswith(a + ":")), None)
        if function is None:
            raise LookupError(f"no local function has the ARN {arn!r}")
        return function.invoke(event)

    return invoke


class SchedulerExtension:
    """Extension: the emulator for the template's schedule groups; `.emulator` once the stack started.

    `clock`: the virtual clock (default: the one the handlers read with VIRTUAL_CLOCK=true). `pumps`: the
    queue pump extension whose queues are drained after each firing."""

    def __init__(
        self,
        *,
        clock: AdvancingClock | None = None,
        pumps: QueuePumpExtension | None = None,
        tick_seconds: float = 1.0,
    ) -> None:
        self.clock = clock
        self.pumps = pumps
        self.tick_seconds = tick_seconds
        self.emulator: SchedulerEmulator | None = None

    def __call__(self, stack: LocalStack) -> None:
        if self.clock is None:
            from coach.adapters.clock import LOCAL_VIRTUAL_CLOCK  # the layer is on sys.path only once the stack runs

            self.clock = LOCAL_VIRTUAL_CLOCK
        resources = stack.template.get("Resources", {})
        groups = tuple(
            stack.physical[logical_id].ref
            for logical_id, resource in resources.items()
            if resource.get("Type") == "AWS::Scheduler::ScheduleGroup" and logical_id in stack.physical
        )
        if not groups:
            return
        client = boto3.client(
            "scheduler", endpoint_url=stack.endpoint_url, region_name=stack.config.region, **FAKE_CREDENTIALS
        )
        self.emulator = SchedulerEmulator(
            client,
            groups,
            function_invoker(stack),
            self.clock,
            drain=self._drain if self.pumps is not None else None,
            tick_seconds=self.tick_seconds,
        )
        stack.add_service(self.emulator)
        stack.add_banner_line("Scheduler", f"fires the schedules of {', '.join(groups)} (cron, rate, at)")

    def _drain(self, timeout: float) -> None:
        for pump in self.pumps.pumps.values() if self.pumps is not None else ():
            pump.drain(timeout)
