"""The retention job on the local stack in this process: the template's hourly RetentionSchedule is in moto and
the scheduler emulator fires the real retention function as the virtual clock moves; with RETENTION_DAYS=1 a
participant's greeting leaves the table for the archive in moto's S3, and their DELETE erases it."""

from __future__ import annotations

import io
import json
import os
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from coach.bootstrap import forget_built_services
from infra.local import LocalConfig, LocalStack
from infra.local.clock import ClockExtension
from infra.local.fake_twilio import FakeTwilioExtension
from infra.local.pump import QueuePumpExtension
from infra.local.scheduler import SchedulerExtension
from tests.support.aws import local_client as aws

KEY = "retention-local-key"


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    """The whole local stack with RETENTION_DAYS=1; the handlers run here and read os.environ, put back after."""
    saved = dict(os.environ)
    forget_built_services()
    pumps = QueuePumpExtension(redelivery_delay_seconds=0)
    scheduler = SchedulerExtension(pumps=pumps)
    running = LocalStack(
        LocalConfig.from_environ({"PORT": "0", "API_KEY": KEY, "RETENTION_DAYS": "1"}),
        extensions=[FakeTwilioExtension(delivery_delay_seconds=0), pumps, scheduler, ClockExtension(scheduler)],
        environ=os.environ,
        log=io.StringIO(),
    )
    try:
        running.start()
        yield running
    finally:
        running.stop()
        os.environ.clear()
        os.environ.update(saved)
        forget_built_services()


def api(stack: LocalStack, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    headers = {"x-api-key": KEY, "content-type": "application/json"}
    request = urllib.request.Request(stack.base_url + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            raw = answer.read()
            return answer.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as error:
        with error:
            return error.code, json.loads(error.read() or b"null")


def local(stack: LocalStack, path: str, body: dict[str, Any]) -> Any:
    request = urllib.request.Request(stack.base_url + path, data=json.dumps(body).encode(), method="POST")
    with urllib.request.urlopen(request, timeout=120) as answer:
        return json.loads(answer.read())


def archived(stack: LocalStack, participant_id: str) -> list[str]:
    bucket = stack.physical["ExportBucket"].ref
    listed = aws(stack, "s3").list_objects_v2(Bucket=bucket, Prefix=f"archive/{participant_id}/")
    return [item["Key"] for item in listed.get("Contents", [])]


def test_the_hourly_schedule_archives_a_day_old_greeting_and_a_delete_erases_the_archive(stack: LocalStack) -> None:
    schedule = aws(stack, "scheduler").get_schedule(
        Name=stack.physical["RetentionSchedule"].ref, GroupName=stack.physical["NudgeScheduleGroup"].ref
    )
    assert schedule["ScheduleExpression"] == "rate(1 hour)"
    assert schedule["Target"]["Arn"] == stack.functions["RetentionFunction"].arn
    status, participant = api(stack, "POST", "/conversation/participants", {"phone_number": "+12065550161"})
    assert status == 201
    local(stack, "/_local/pump/drain", {"timeout_seconds": 20})
    path = f"/conversation/participants/{participant['id']}"
    [greeting] = api(stack, "GET", f"{path}/messages")[1]["items"]

    # When two days go by on the virtual clock
    fired = local(stack, "/_local/clock/advance", {"minutes": 50 * 60})["fired"]

    # Then the retention function ran every hour, and the greeting left the table for the archive
    runs = [f for f in fired if f["schedule"] == stack.physical["RetentionSchedule"].ref]
    assert len(runs) >= 49
    assert {f["result"] for f in runs} == {"ok"}
    assert api(stack, "GET", f"{path}/messages")[1]["items"] == []
    files = archived(stack, participant["id"])
    assert [key.split("/")[2] for key in files] == ["events", "messages"]
    body = aws(stack, "s3").get_object(Bucket=stack.physical["ExportBucket"].ref, Key=files[1])["Body"].read()
    assert json.loads(body.splitlines()[0])["message_id"] == greeting["message_id"]

    # When the participant is deleted, their archive goes with them
    assert api(stack, "DELETE", path)[0] == 204
    assert archived(stack, participant["id"]) == []
