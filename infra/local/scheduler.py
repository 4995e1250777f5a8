"""EventBridge Scheduler, locally: fire the schedules in moto (the handlers' and the template's) when they
fall due, and invoke their targets asynchronously, as Lambda does.

moto stores schedules but never fires them. The emulator keeps the moment it last checked; on each tick
(every second of real time) and on each advance of the virtual clock it lists the schedule groups'
schedules, works out what fell due since (infra/local/aws_cron.py: AWS's cron, rate and at() in the
schedule's timezone) and invokes the target function with the schedule's Target.Input, oldest first
across schedules, after replacing Scheduler's context attributes in it (<aws.scheduler.scheduled-time>,
-schedule-arn, -execution-id, -attempt-number). As on AWS: a DISABLED schedule does not fire, a one-time
schedule fires once and, with ActionAfterCompletion DELETE, is deleted after firing; StartDate and
EndDate bound recurring schedules.

Scheduler invokes Lambda asynchronously, so a target that raises is retried by Lambda, not by Scheduler
(AsyncInvocations): by the function's EventInvokeConfig in the template (default: 2 retries, events up to
6 hours old), 1 minute after the failed attempt and 2 minutes after the first retry, with the same event
and request id, on the virtual clock; no retry is made that would be older than MaximumEventAgeInSeconds
(counted from the first attempt's due time). Then the invocation record ("RetriesExhausted" or
"EventAgeExceeded") goes to the OnFailure destination when it is an SQS queue. A retry is due work like a
schedule's occurrence, reported as a Firing with its attempt number, and fires even if its schedule is
gone. A
schedule's own RetryPolicy and DeadLetterConfig cover only a failed hand-over to Lambda (throttling, a
missing permission), which cannot happen locally: they are never used. A target no local function has,
or an input that is not JSON, is reported and dropped.

`advance(delta)` moves the virtual clock forward one due firing at a time, so what a firing schedules
inside the span (a nudge's reminder five hours later, a retry a minute later) fires too, each at its own
time.
"""

from __future__ import annotations

import json
import random
import sys
import threading
import traceback
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

import boto3
from botocore.exceptions import ClientError

from infra.local.aws_cron import At, Rate, ScheduleExpressionError, Timing, parse
from infra.local.intrinsics import Intrinsics, TemplateError
from infra.local.resources import FAKE_CREDENTIALS
from infra.local.virtual_clock import LOCAL_VIRTUAL_CLOCK

if TYPE_CHECKING:
    from infra.local.pump import QueuePumpExtension
    from infra.local.stack import LocalStack

# A firing that keeps scheduling new due work would otherwise hold an advance forever.
MAX_FIRINGS_PER_RUN = 10_000
DRAIN_TIMEOUT_SECONDS = 30.0
# Lambda's asynchronous invocation: the waits before the first and the second retry, and its defaults.
RETRY_DELAYS = (timedelta(minutes=1), timedelta(minutes=2))
DEFAULT_RETRY_ATTEMPTS = 2
DEFAULT_MAXIMUM_EVENT_AGE = timedelta(hours=6)


class AdvancingClock(Protocol):
    """infra.local.virtual_clock.VirtualClock, as the emulator uses it."""

    def now(self) -> datetime: ...
    def advance(self, delta: timedelta) -> datetime: ...


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class Firing:
    """One invocation of a schedule's target, as `POST /_local/clock/advance` reports it: the schedule's own
    (attempt 1) or a retry of it by Lambda (attempts 2 and 3, `at` the retry's due time)."""

    schedule: str
    at: datetime  # when it was due
    kind: str | None
    participant_id: str | None
    result: str  # "ok" or "error: ..."
    attempt: int = 1

    def as_json(self) -> dict[str, Any]:
        return {
            "schedule": self.schedule,
            "at": iso(self.at),
            "kind": self.kind,
            "participant_id": self.participant_id,
            "result": self.result,
            "attempt": self.attempt,
        }


@dataclass(frozen=True)
class Schedule:
    """What firing needs of GetSchedule's answer. `version` tells one edit of a schedule from the next."""

    group: str
    name: str
    arn: str
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
            arn=answer.get("Arn", ""),
            timing=parse(answer["ScheduleExpression"], answer.get("ScheduleExpressionTimezone")),
            target_arn=target.get("Arn", ""),
            input=target.get("Input"),
            enabled=answer.get("State") != "DISABLED",
            delete_after=answer.get("ActionAfterCompletion") == "DELETE",
            start=answer.get("StartDate"),
            end=answer.get("EndDate"),
            version=version,
        )


def with_context_attributes(text: str, *, scheduled_time: datetime, schedule_arn: str, execution_id: str) -> str:
    """A target's input as Scheduler hands it over: its context attributes replaced (before it is parsed)."""
    values = {
        "<aws.scheduler.scheduled-time>": iso(scheduled_time.replace(microsecond=0)),
        "<aws.scheduler.schedule-arn>": schedule_arn,
        "<aws.scheduler.execution-id>": execution_id,
        "<aws.scheduler.attempt-number>": "1",  # Scheduler's own attempt: a hand-over never fails locally
    }
    for placeholder, value in values.items():
        text = text.replace(placeholder, value)
    return text


# --- Lambda's asynchronous invocation ------------------------------------------------------------------


@dataclass(frozen=True)
class EventInvokeConfig:
    """How Lambda treats a function's asynchronous invocations (the template's EventInvokeConfig)."""

    maximum_retry_attempts: int = DEFAULT_RETRY_ATTEMPTS
    maximum_event_age: timedelta = DEFAULT_MAXIMUM_EVENT_AGE
    on_failure: str | None = None  # the OnFailure destination's ARN
    on_failure_type: str | None = None  # SQS, SNS, Lambda, EventBridge, S3: only SQS is delivered locally

    @classmethod
    def of_function(cls, intrinsics: Intrinsics, logical_id: str) -> EventInvokeConfig:
        """The function's EventInvokeConfig over Globals.Function's, evaluated; Lambda's defaults when absent."""
        template = intrinsics.template
        shared = template.get("Globals", {}).get("Function", {}).get("EventInvokeConfig", {})
        own = template["Resources"][logical_id].get("Properties", {}).get("EventInvokeConfig", {})
        spec = intrinsics.evaluate({**shared, **own})
        attempts = int(spec.get("MaximumRetryAttempts", DEFAULT_RETRY_ATTEMPTS))
        age = int(spec.get("MaximumEventAgeInSeconds", DEFAULT_MAXIMUM_EVENT_AGE.total_seconds()))
        if not 0 <= attempts <= len(RETRY_DELAYS) or not 60 <= age <= DEFAULT_MAXIMUM_EVENT_AGE.total_seconds():
            raise TemplateError(f"{logical_id}.EventInvokeConfig: Lambda takes 0-2 retries and an age of 60-21600 s")
        on_failure = (spec.get("DestinationConfig") or {}).get("OnFailure") or {}
        return cls(attempts, timedelta(seconds=age), on_failure.get("Destination"), on_failure.get("Type"))


@dataclass(frozen=True)
class AsyncTarget:
    """A function as Lambda's asynchronous invocation sees it."""

    arn: str
    run: Callable[[Any, str], Any]  # (event, request id) -> result; raises what the function raised
    config: EventInvokeConfig = EventInvokeConfig()


@dataclass(frozen=True)
class AsyncInvocation:
    """One event a schedule handed to Lambda, as Lambda keeps it between attempts (the same event and
    request id each time). `due`: when this attempt is due; `first_due`: the first one's, the event's age."""

    request_id: str
    function_arn: str
    event: Any
    group: str
    schedule: str
    first_due: datetime
    due: datetime
    attempt: int = 1

    @property
    def details(self) -> Mapping[str, Any]:
        return self.event if isinstance(self.event, dict) else {}


@dataclass(frozen=True)
class Outcome:
    """What one attempt came to: `retry` when Lambda tries again; `gave_up` ("RetriesExhausted" or
    "EventAgeExceeded") when it does not, with what became of the invocation record in `record`."""

    result: str  # "ok" or "error: ..."
    retry: AsyncInvocation | None = None
    gave_up: str | None = None
    record: str | None = None


Deliver = Callable[[str, str], str]  # (queue ARN, message body) -> the queue's name; LookupError: no such queue


class AsyncInvocations:
    """Lambda's asynchronous invocation of the local functions: run an attempt, keep the retry it calls for
    until the scheduler emulator runs it, and send the record of an invocation that failed for good to the
    function's OnFailure queue. Not thread-safe: the emulator calls it under its lock."""

    def __init__(self, targets: Mapping[str, AsyncTarget], deliver: Deliver | None = None) -> None:
        self._targets = dict(targets)  # by function ARN
        self._deliver = deliver
        self._retries: list[AsyncInvocation] = []

    def retries(self) -> list[AsyncInvocation]:
        """The retries Lambda will make, in the order they were called for."""
        return list(self._retries)

    def run(self, invocation: AsyncInvocation, at: datetime) -> Outcome:
        """Make the attempt at virtual time `at` (a pending retry is taken off the list)."""
        if invocation in self._retries:
            self._retries.remove(invocation)
        target = self._target(invocation.function_arn)
        if target is None:
            return Outcome(f"error: no local function has the ARN {invocation.function_arn!r}")
        try:
            target.run(invocation.event, invocation.request_id)
            return Outcome("ok")
        except Exception as exc:  # the function failed: Lambda decides what comes next
            traceback.print_exc(file=sys.stderr)
            error = exc
        config = target.config
        if invocation.attempt > config.maximum_retry_attempts:
            return self._give_up(invocation, target, at, "RetriesExhausted", error)
        due = at + RETRY_DELAYS[invocation.attempt - 1]
        if due - invocation.first_due > config.maximum_event_age:
            return self._give_up(invocation, target, at, "EventAgeExceeded", error)
        retry = replace(invocation, due=due, attempt=invocation.attempt + 1)
        self._retries.append(retry)
        return Outcome(_error(error), retry=retry)

    def _target(self, arn: str) -> AsyncTarget | None:
        """The function of an ARN; a version or alias suffix is ignored (there is only $LATEST)."""
        return self._targets.get(arn) or next((t for a, t in self._targets.items() if arn.startswith(a + ":")), None)

    def _give_up(
        self, invocation: AsyncInvocation, target: AsyncTarget, at: datetime, condition: str, error: Exception
    ) -> Outcome:
        return Outcome(
            _error(error), gave_up=condition, record=self._send_record(invocation, target, at, condition, error)
        )

    def _send_record(
        self, invocation: AsyncInvocation, target: AsyncTarget, at: datetime, condition: str, error: Exception
    ) -> str:
        """Send the invocation record to the OnFailure destination; what became of it."""
        destination, kind = target.config.on_failure, target.config.on_failure_type
        if destination is None:
            return "no OnFailure destination: dropped"
        if kind != "SQS" or self._deliver is None:
            return f"not delivered: the local stack delivers only to an SQS destination, not {kind}"
        record = invocation_record(invocation, target.arn, at, condition, error)
        try:
            return f"record sent to {self._deliver(destination, json.dumps(record))}"
        except LookupError:
            return f"not delivered: no local queue has the ARN {destination}"
        except ClientError as exc:
            return f"not delivered: {exc}"


def _error(error: Exception) -> str:
    return f"error: {type(error).__name__}: {error}"


def invocation_record(
    invocation: AsyncInvocation, function_arn: str, at: datetime, condition: str, error: Exception
) -> dict[str, Any]:
    """What Lambda sends an OnFailure destination about an asynchronous invocation it gave up on."""
    return {
        "version": "1.0",
        "timestamp": at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "requestContext": {
            "requestId": invocation.request_id,
            "functionArn": f"{function_arn}:$LATEST",  # Lambda names the version that ran
            "condition": condition,
            "approximateInvokeCount": invocation.attempt,
        },
        "requestPayload": invocation.event,
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
        "responsePayload": {"errorMessage": str(error), "errorType": type(error).__name__},
    }


# --- the emulator ---------------------------------------------------------------------------------------

Due = Schedule | AsyncInvocation  # a schedule's occurrence, or a retry Lambda will make


class SchedulerEmulator:
    """A BackgroundService: ticks every `tick_seconds`; `check()` and `advance()` fire what fell due."""

    name = "scheduler emulator"

    def __init__(
        self,
        client: Any,
        groups: tuple[str, ...],
        invocations: AsyncInvocations,
        clock: AdvancingClock,
        *,
        drain: Callable[[float], None] | None = None,
        tick_seconds: float = 1.0,
        log: Callable[[str], None] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        """`drain(timeout)`: wait until the work a firing queued is handled, so its texts go out before the
        next firing (the queue pump's drain). `rng`: where execution and request ids come from."""
        self.clock = clock
        self.groups = groups
        self.invocations = invocations
        self._client = client
        self._drain = drain
        self._tick_seconds = tick_seconds
        self._log = log or (lambda line: print(line, file=sys.stderr, flush=True))
        self._rng = rng or random.Random()
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
            # When the attempts are made, on the virtual clock: what a retry's wait counts from.
            at = when if move_clock else max(when, until.replace(microsecond=0))
            for item in batch:
                fired.append(self._fire(item, when, at) if isinstance(item, Schedule) else self._retry(item, at))
            self._last_check = max(self._last_check, when)
            if len(fired) >= MAX_FIRINGS_PER_RUN:
                self._log(f"{self.name}: stopped after {len(fired)} firings up to {iso(when)}")
                break
        return fired

    def _next_due(self, until: datetime) -> tuple[datetime, list[Due]] | None:
        """The earliest due moment up to `until` and everything due then (by schedule, then attempt), or None."""
        earliest: datetime | None = None
        batch: list[Due] = []
        candidates: list[Due] = [*self._schedules(), *self.invocations.retries()]
        for item in candidates:
            when = self._due_time(item, until) if isinstance(item, Schedule) else item.due
            if when is None or when > until or (earliest is not None and when > earliest):
                continue
            if earliest is None or when < earliest:
                earliest, batch = when, []
            batch.append(item)
        return None if earliest is None else (earliest, sorted(batch, key=_order))

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

    def _fire(self, schedule: Schedule, when: datetime, at: datetime) -> Firing:
        """The schedule's occurrence due `when`: hand its input to Lambda, which makes the first attempt."""
        text = with_context_attributes(
            schedule.input or "",
            scheduled_time=when,
            schedule_arn=schedule.arn,
            execution_id=f"{self._rng.getrandbits(64):016x}",
        )
        try:
            event = json.loads(text) if text else {}
        except json.JSONDecodeError:
            invocation, outcome = None, Outcome("error: the schedule's Target.Input is not JSON")
        else:
            request_id = str(uuid.UUID(int=self._rng.getrandbits(128), version=4))
            invocation = AsyncInvocation(
                request_id, schedule.target_arn, event, schedule.group, schedule.name, when, when
            )
            outcome = self.invocations.run(invocation, at)
        if isinstance(schedule.timing, At):
            self._fired_once.add(schedule.version)
            if schedule.delete_after:
                self._delete(schedule)
        self._drain_queue()
        details = invocation.details if invocation is not None else {}
        firing = Firing(schedule.name, when, details.get("kind"), details.get("participant_id"), outcome.result)
        self._report(firing, outcome)
        return firing

    def _retry(self, retry: AsyncInvocation, at: datetime) -> Firing:
        """Lambda's retry of an attempt that failed; its schedule may be gone by now."""
        outcome = self.invocations.run(retry, at)
        self._drain_queue()
        details = retry.details
        firing = Firing(
            retry.schedule, retry.due, details.get("kind"), details.get("participant_id"), outcome.result, retry.attempt
        )
        self._report(firing, outcome)
        return firing

    def _report(self, firing: Firing, outcome: Outcome) -> None:
        what = f"{self.name}: {firing.schedule} ({firing.kind or '-'})"
        attempt = f" attempt {firing.attempt}" if firing.attempt > 1 else ""
        self._log(f"{what}{attempt} due {iso(firing.at)} -> {firing.result}")
        if outcome.retry is not None:
            self._log(f"{what} Lambda retries it: attempt {outcome.retry.attempt} due {iso(outcome.retry.due)}")
        if outcome.gave_up is not None:
            self._log(f"{what} Lambda gave up after {firing.attempt} attempts ({outcome.gave_up}): {outcome.record}")

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


def _order(item: Due) -> tuple[str, str, int]:
    if isinstance(item, Schedule):
        return item.group, item.name, 1
    return item.group, item.schedule, item.attempt


def async_targets(stack: LocalStack) -> dict[str, AsyncTarget]:
    """The template's functions by ARN, each with its EventInvokeConfig."""
    if stack.intrinsics is None:
        raise RuntimeError("the local stack is not started")
    return {
        function.arn: AsyncTarget(
            function.arn, function.invoke, EventInvokeConfig.of_function(stack.intrinsics, logical_id)
        )
        for logical_id, function in stack.functions.items()
    }


def queue_delivery(stack: LocalStack) -> Deliver:
    """Send a message to one of the stack's queues in moto, named by its ARN."""
    queues = {r.attributes["Arn"]: r for r in stack.physical.values() if "QueueUrl" in r.attributes}
    sqs = boto3.client("sqs", endpoint_url=stack.endpoint_url, region_name=stack.config.region, **FAKE_CREDENTIALS)

    def deliver(arn: str, body: str) -> str:
        if arn not in queues:
            raise LookupError(arn)
        sqs.send_message(QueueUrl=queues[arn].ref, MessageBody=body)
        return queues[arn].attributes["QueueName"]

    return deliver


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
            self.clock = LOCAL_VIRTUAL_CLOCK
        resources = stack.template.get("Resources", {})
        groups = [
            stack.physical[logical_id].ref
            for logical_id, resource in resources.items()
            if resource.get("Type") == "AWS::Scheduler::ScheduleGroup" and logical_id in stack.physical
        ]
        # The template's own schedules may be in the default group: arn:...:schedule/<group>/<name>.
        groups += [
            stack.physical[logical_id].attributes["Arn"].split("/")[-2]
            for logical_id, resource in resources.items()
            if resource.get("Type") == "AWS::Scheduler::Schedule" and logical_id in stack.physical
        ]
        if not groups:
            return
        client = boto3.client(
            "scheduler", endpoint_url=stack.endpoint_url, region_name=stack.config.region, **FAKE_CREDENTIALS
        )
        self.emulator = SchedulerEmulator(
            client,
            tuple(dict.fromkeys(groups)),
            AsyncInvocations(async_targets(stack), queue_delivery(stack)),
            self.clock,
            drain=self._drain if self.pumps is not None else None,
            tick_seconds=self.tick_seconds,
        )
        stack.add_service(self.emulator)
        listed = ", ".join(self.emulator.groups)
        stack.add_banner_line("Scheduler", f"fires the schedules of {listed} (cron, rate, at; Lambda's retries)")

    def _drain(self, timeout: float) -> None:
        for pump in self.pumps.pumps.values() if self.pumps is not None else ():
            pump.drain(timeout)
