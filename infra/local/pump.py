"""Lambda's SQS event source, locally: poll a queue in moto, invoke the function with the event Lambda would
build, delete what succeeded, and leave the rest to come back after the visibility timeout (and, after
the redrive policy's maxReceiveCount receives, to be moved to the DLQ by moto, as SQS does).

One pump per SQS event in template.yaml (ConversationFunction <- InboundQueue), with its BatchSize and
FunctionResponseTypes, and as many workers as the function may run at once: different message groups are
handled side by side, one group's batches one at a time and in order. Tests wait for the queue to empty
with `pump.drain(timeout)`; over HTTP, `POST /_local/pump/drain {"timeout_seconds": 10}`.
"""

from __future__ import annotations

import sys
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import boto3

from infra.local.functions import InvocationTimedOut, LocalFunction
from infra.local.resources import FAKE_CREDENTIALS
from infra.local.web import HttpRequest, HttpResponse, json_response

if TYPE_CHECKING:
    from infra.local.stack import LocalStack

CONTROL_PREFIX = "/_local/pump"
MAX_BATCH = 10  # ReceiveMessage's limit, and Lambda's default BatchSize for SQS


@dataclass(frozen=True)
class SqsEventSource:
    """One `Type: SQS` event of a function in the template."""

    function_id: str
    queue_id: str
    batch_size: int = MAX_BATCH
    reports_item_failures: bool = False


def sqs_event_sources(template: Mapping[str, Any]) -> list[SqsEventSource]:
    sources = []
    for function_id, resource in template.get("Resources", {}).items():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        for event in resource.get("Properties", {}).get("Events", {}).values():
            props = event.get("Properties", {})
            queue = props.get("Queue", {})
            if event.get("Type") != "SQS" or props.get("Enabled") is False or "Fn::GetAtt" not in queue:
                continue
            sources.append(
                SqsEventSource(
                    function_id=function_id,
                    queue_id=queue["Fn::GetAtt"][0],
                    batch_size=int(props.get("BatchSize", MAX_BATCH)),
                    reports_item_failures="ReportBatchItemFailures" in props.get("FunctionResponseTypes", []),
                )
            )
    return sources


def sqs_event(messages: list[dict[str, Any]], *, queue_arn: str, region: str) -> dict[str, Any]:
    """The event Lambda hands a function for messages from ReceiveMessage (AttributeNames=All)."""
    return {"Records": [_record(message, queue_arn, region) for message in messages]}


def _record(message: dict[str, Any], queue_arn: str, region: str) -> dict[str, Any]:
    attributes = {
        name: value
        for name, value in message.get("Attributes", {}).items()
        if name not in ("AWSTraceHeader",)  # only present with X-Ray; Lambda passes it, moto has none
    }
    record: dict[str, Any] = {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": attributes,
        "messageAttributes": {
            name: {
                "stringValue": value.get("StringValue"),
                "binaryValue": value.get("BinaryValue"),
                "stringListValues": value.get("StringListValues", []),
                "binaryListValues": value.get("BinaryListValues", []),
                "dataType": value["DataType"],
            }
            for name, value in message.get("MessageAttributes", {}).items()
        },
        "md5OfBody": message["MD5OfBody"],
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    }
    if "MD5OfMessageAttributes" in message:
        record["md5OfMessageAttributes"] = message["MD5OfMessageAttributes"]
    return record


def failed_message_ids(result: Any, message_ids: list[str], *, reports_item_failures: bool) -> set[str]:
    """Which records Lambda keeps on the queue after the function returned `result`.

    Without ReportBatchItemFailures any return is success. With it, Lambda reads batchItemFailures; an
    entry it cannot match to a record makes the whole batch fail, and no list at all means none failed.
    """
    if not reports_item_failures or not isinstance(result, dict):
        return set()
    failures = result.get("batchItemFailures") or []
    if not isinstance(failures, list):
        return set(message_ids)
    ids = {f.get("itemIdentifier") if isinstance(f, dict) else None for f in failures}
    return {i for i in ids if isinstance(i, str)} if ids <= set(message_ids) else set(message_ids)


class QueuePump:
    """A BackgroundService that feeds one queue to one function, as Lambda's SQS poller does: several workers
    (by default as many as the function may run at once), each receiving a batch and invoking the function
    with it, so the batches of different message groups are handled side by side.

    Of a FIFO queue no two batches of one message group are in flight at once, and a group's messages come
    in order: SQS hides a group's messages while one of them is in flight (received, neither deleted nor
    visible again), and moto does the same. Its check is taken when a receive starts, which is exact here
    because every receive reaches moto as one that does not wait, under its lock (see MotoEndpoint). The
    pump adds no rule of its own: a record given back while its invocation still runs (by the handler, or
    after a timeout) may be received at once, as on AWS.
    """

    def __init__(
        self,
        function: LocalFunction,
        sqs: Any,
        queue_url: str,
        queue_arn: str,
        *,
        region: str,
        batch_size: int = MAX_BATCH,
        reports_item_failures: bool = True,
        wait_seconds: int = 1,
        redelivery_delay_seconds: int | None = None,
        workers: int | None = None,
        log: Callable[[str], None] | None = None,
    ) -> None:
        """`wait_seconds`: the long poll, short so stop() is prompt. `redelivery_delay_seconds`: when set,
        failed records come back after that long instead of the queue's visibility timeout (tests: 0).
        `workers`: batches at once (default: the function's concurrency)."""
        self.function = function
        self.queue_url = queue_url
        self.queue_arn = queue_arn
        self.name = f"queue pump -> {function.logical_id}"
        self.workers = max(1, function.concurrency if workers is None else workers)
        self._sqs = sqs
        self._region = region
        self._batch_size = max(1, min(batch_size, MAX_BATCH))
        self._reports_item_failures = reports_item_failures
        self._wait_seconds = wait_seconds
        self._redelivery_delay = redelivery_delay_seconds
        self._log = log or (lambda line: print(line, file=sys.stderr, flush=True))
        self._stopping = threading.Event()
        self._state = threading.Condition()  # guards the two below
        self._cycle = 0  # ReceiveMessage calls finished (each followed by its invocation), for drain()
        self._in_hand = 0  # batches received and not yet deleted or given back
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        self._stopping.clear()
        self._threads = [
            threading.Thread(target=self._run, name=f"{self.name} #{n + 1}", daemon=True) for n in range(self.workers)
        ]
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stopping.set()
        with self._state:
            self._state.notify_all()
        # A worker finishes its long poll, then the invocation in hand, which ends by the function's timeout.
        deadline = time.monotonic() + self._wait_seconds + self.function.timeout_seconds + 5
        for thread in self._threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
        self._threads = []

    def drain(self, timeout: float = 10.0) -> None:
        """Return once the queue holds nothing (every message deleted or moved to the DLQ) and no worker
        holds a batch.

        Raises TimeoutError otherwise; a message that failed waits out the visibility timeout, so without
        redelivery_delay_seconds a failing queue does not drain in a test's time.
        """
        deadline = time.monotonic() + timeout
        while True:
            with self._state:
                seen = self._cycle
                idle = self._in_hand == 0
            # SQS counts a message received but not yet deleted as in flight (NotVisible), so "empty" cannot
            # be seen while a batch is being handled; between checks, wait for a worker to finish a cycle.
            if idle and self._queue_is_empty():
                return
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"{self.queue_url} still holds messages after {timeout} s")
            if not self._wait_for_cycle_after(seen, remaining):
                raise TimeoutError("the pump stopped before the queue drained")

    def _wait_for_cycle_after(self, seen: int, timeout: float) -> bool:
        """Wait until a worker finishes a cycle after the `seen`th, or a moment; False when the pump stopped.

        The moment bounds the wait: moto moves a message to the DLQ during a receive that then returns
        nothing, and the queue is empty from then on.
        """
        with self._state:
            self._state.wait_for(lambda: self._cycle > seen or self._stopping.is_set(), min(timeout, 0.05))
        return not self._stopping.is_set()

    def _queue_is_empty(self) -> bool:
        names = [
            "ApproximateNumberOfMessages",
            "ApproximateNumberOfMessagesNotVisible",
            "ApproximateNumberOfMessagesDelayed",
        ]
        counts = self._sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=names)["Attributes"]
        return all(int(counts.get(name, 0)) == 0 for name in names)

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                self.pump_once()
            except Exception:  # moto hiccup or a bug: say so and keep pumping, as Lambda's poller does
                traceback.print_exc(file=sys.stderr)
                self._stopping.wait(1)
            finally:
                with self._state:
                    self._cycle += 1
                    self._state.notify_all()

    def pump_once(self) -> int:
        """Receive one batch (waiting up to wait_seconds), invoke the function with it; records handled."""
        messages = self._sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=self._batch_size,
            WaitTimeSeconds=self._wait_seconds,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
            MessageSystemAttributeNames=["All"],
        ).get("Messages", [])
        if not messages:
            return 0
        with self._state:
            self._in_hand += 1
        try:
            self._handle(messages)
        finally:
            with self._state:
                self._in_hand -= 1
                self._state.notify_all()
        return len(messages)

    def _handle(self, messages: list[dict[str, Any]]) -> None:
        """Invoke the function with one batch, delete what succeeded and leave the rest to come back."""
        ids = [m["MessageId"] for m in messages]
        try:
            result = self.function.invoke(sqs_event(messages, queue_arn=self.queue_arn, region=self._region))
        except InvocationTimedOut:  # the function logged it; the whole batch comes back
            failed = set(ids)
        except Exception:
            traceback.print_exc(file=sys.stderr)  # Lambda logs the error; the whole batch comes back
            failed = set(ids)
        else:
            failed = failed_message_ids(result, ids, reports_item_failures=self._reports_item_failures)
        done = [m for m in messages if m["MessageId"] not in failed]
        for start in range(0, len(done), MAX_BATCH):
            batch = done[start : start + MAX_BATCH]
            entries = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(batch)]
            answer = self._sqs.delete_message_batch(QueueUrl=self.queue_url, Entries=entries)
            for failure in answer.get("Failed", []):  # the message comes back: the handler must be idempotent
                self._log(f"{self.function.logical_id}: could not delete a record: {failure.get('Code')}")
        if self._redelivery_delay is not None:
            self._give_back([m for m in messages if m["MessageId"] in failed], self._redelivery_delay)
        self._log(f"{self.function.logical_id}: {len(messages)} record(s), {len(failed)} failed")

    def _give_back(self, messages: list[dict[str, Any]], seconds: int) -> None:
        """Make the messages visible again in `seconds`; one that cannot be comes back at its visibility timeout."""
        for start in range(0, len(messages), MAX_BATCH):
            batch = messages[start : start + MAX_BATCH]
            entries = [
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": seconds}
                for i, m in enumerate(batch)
            ]
            answer = self._sqs.change_message_visibility_batch(QueueUrl=self.queue_url, Entries=entries)
            for failure in answer.get("Failed", []):
                self._log(f"{self.function.logical_id}: could not give a record back: {failure.get('Code')}")


class QueuePumpExtension:
    """Extension: one QueuePump per SQS event source in the template; `.pumps` by function once started."""

    def __init__(
        self, *, redelivery_delay_seconds: int | None = None, wait_seconds: int = 1, workers: int | None = None
    ) -> None:
        self.redelivery_delay_seconds = redelivery_delay_seconds
        self.wait_seconds = wait_seconds
        self.workers = workers
        self.pumps: dict[str, QueuePump] = {}

    def __call__(self, stack: LocalStack) -> None:
        region = stack.config.region
        sqs = boto3.client("sqs", endpoint_url=stack.endpoint_url, region_name=region, **FAKE_CREDENTIALS)
        for source in sqs_event_sources(stack.template):
            if source.queue_id not in stack.physical or source.function_id not in stack.functions:
                continue
            queue = stack.physical[source.queue_id]
            pump = QueuePump(
                stack.functions[source.function_id],
                sqs,
                queue.ref,
                queue.attributes["Arn"],
                region=region,
                batch_size=source.batch_size,
                reports_item_failures=source.reports_item_failures,
                wait_seconds=self.wait_seconds,
                redelivery_delay_seconds=self.redelivery_delay_seconds,
                workers=self.workers,
            )
            self.pumps[source.function_id] = pump
            stack.add_service(pump)
            name = queue.attributes.get("QueueName", queue.ref)
            stack.add_banner_line("Queue pump", f"{name} -> {source.function_id}")
        stack.mount(CONTROL_PREFIX, self.handle_control)

    def handle_control(self, request: HttpRequest) -> HttpResponse | None:
        """POST /_local/pump/drain {"timeout_seconds": N}: 200 once every queue is empty, 504 if not in time."""
        if request.path.rstrip("/") != f"{CONTROL_PREFIX}/drain" or request.method != "POST":
            return None
        try:
            spec = request.json() or {}
            timeout = float(spec.get("timeout_seconds", 10)) if isinstance(spec, dict) else 10.0
        except ValueError:
            return json_response(400, {"message": 'send {"timeout_seconds": 10}'})
        deadline = time.monotonic() + max(0.0, min(timeout, 120.0))
        try:
            for pump in self.pumps.values():
                pump.drain(max(0.0, deadline - time.monotonic()))
        except TimeoutError as exc:
            return json_response(504, {"drained": False, "message": str(exc)})
        return json_response(200, {"drained": True})
