"""The researcher command line (infra.researcher) against the local stack in this process: the real enrollment,
conversation and export functions, the queue pumps, and moto's S3 serving the presigned downloads.

Given a stack started once for the module, when a researcher enrolls from a CSV, exports to a folder or reads
one participant's timeline with `main(argv)`, then what it prints is what the API did, every download is
checked, and each expected failure is a clear message and an exit status, never a traceback.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import socket
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from coach.bootstrap import forget_built_services
from infra import researcher
from infra.local import LocalConfig, LocalStack
from infra.local.clock import ClockExtension
from infra.local.fake_twilio import FakeTwilioExtension
from infra.local.pump import QueuePumpExtension
from infra.local.scheduler import SchedulerExtension
from tests.support.aws import local_client as aws

KEY = "researcher-cli-key"
MAX_BODY_BYTES = 4096
STUDY_CSV = (
    "phone_number,name,timezone\n"
    "+1 206 555 0131,Ada,America/Los_Angeles\n"
    "+1 206 555 0132,Grace,America/New_York\n"
    "206-555-01,Linus,Europe/Helsinki\n"
    "+1 206 555 0133,,\n"
)


@dataclass
class Ran:
    code: int
    out: str
    err: str


class WallClock:
    """What moto's S3 checks presigned URLs' expiry against: now, or as far ahead as a test moves it."""

    def __init__(self) -> None:
        self.ahead = 0.0

    def __call__(self) -> float:
        return time.time() + self.ahead


@pytest.fixture(scope="module")
def wall_clock() -> WallClock:
    return WallClock()


@pytest.fixture(scope="module")
def stack(wall_clock: WallClock) -> Iterator[LocalStack]:
    """The whole local stack on a free port; the handlers run here and read os.environ, put back afterwards."""
    saved = dict(os.environ)
    os.environ["MAX_BODY_BYTES"] = str(MAX_BODY_BYTES)  # small, so a batch over it costs a few rows
    forget_built_services()
    pumps = QueuePumpExtension(redelivery_delay_seconds=0)
    scheduler = SchedulerExtension(pumps=pumps)
    running = LocalStack(
        LocalConfig.from_environ({"PORT": "0", "API_KEY": KEY}),
        extensions=[FakeTwilioExtension(delivery_delay_seconds=0), pumps, scheduler, ClockExtension(scheduler)],
        environ=os.environ,
        log=io.StringIO(),
        wall_clock=wall_clock,
    )
    try:
        running.start()
        yield running
    finally:
        running.stop()
        os.environ.clear()
        os.environ.update(saved)
        forget_built_services()


def drain(stack: LocalStack, _seconds: float = 0.0) -> None:
    """Wait until every queued turn and export has run (what the CLI's pause does here instead of sleeping)."""
    body = json.dumps({"timeout_seconds": 20}).encode()
    request = urllib.request.Request(f"{stack.base_url}/_local/pump/drain", data=body, method="POST")
    with urllib.request.urlopen(request, timeout=30) as answer:
        assert answer.status == 200


def run(stack: LocalStack, *argv: str, key: str = KEY) -> Ran:
    """main(argv) and what it printed (its own streams: the handlers print their metrics to sys.stdout)."""
    out, err = io.StringIO(), io.StringIO()
    pacing = researcher.Pacing(pause=lambda seconds: drain(stack, seconds))
    argv_ = ["--url", stack.base_url, "--key", key, *argv]
    code = researcher.main(argv_, environ={}, pacing=pacing, stdout=out, stderr=err)
    return Ran(code, out.getvalue(), err.getvalue())


@pytest.fixture(scope="module")
def study_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("study") / "participants.csv"
    path.write_text(STUDY_CSV, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def enrolled(stack: LocalStack, study_csv: Path) -> Ran:
    ran = run(stack, "enroll", str(study_csv))
    drain(stack)  # the greetings are sent
    return ran


def enrolled_ids(ran: Ran) -> list[str]:
    return [line.split()[3] for line in ran.out.splitlines() if line.startswith("row") and " created " in line]


def api_json(stack: LocalStack, path: str) -> Any:
    request = urllib.request.Request(stack.base_url + path, headers={"x-api-key": KEY})
    with urllib.request.urlopen(request, timeout=10) as answer:
        return json.loads(answer.read())


# --- enroll ---------------------------------------------------------------------------------------------------


def test_a_csv_enrolls_its_good_rows_and_names_what_to_fix_in_the_bad_one(enrolled: Ran) -> None:
    lines = enrolled.out.splitlines()

    assert enrolled.code == 1  # a row had an error
    assert [line.split()[:3] for line in lines[:4]] == [
        ["row", "1", "created"],
        ["row", "2", "created"],
        ["row", "3", "ERROR"],
        ["row", "4", "created"],
    ]
    assert "phone_number: not a valid phone number; give it in E.164, e.g. +12065550100" in lines[2]
    assert "3 created, 0 already enrolled, 1 with errors" in enrolled.out
    assert len(enrolled_ids(enrolled)) == 3
    assert enrolled.err == ""


def test_the_same_csv_again_enrolls_nobody_twice(stack: LocalStack, study_csv: Path, enrolled: Ran) -> None:
    before = run(stack, "participants")

    again = run(stack, "enroll", str(study_csv))

    assert again.code == 1
    existing = [line.split()[3] for line in again.out.splitlines() if line.split()[2:3] == ["exists"]]
    assert existing == enrolled_ids(enrolled)
    assert "0 created, 3 already enrolled, 1 with errors" in again.out
    after = run(stack, "participants")
    assert after.code == 0
    assert after.out == before.out
    assert all(after.out.count(participant_id) == 1 for participant_id in existing)


def test_a_long_csv_goes_in_batches_and_rows_keep_their_numbers_in_the_file(
    stack: LocalStack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, enrolled: Ran
) -> None:
    # Four rows a batch; the first four are over this API's 4 KiB (MAX_BODY_BYTES), refused whole (413), so
    # sent again as two halves.
    monkeypatch.setattr(researcher, "ROWS_PER_REQUEST", 4)
    monkeypatch.setattr(researcher, "BYTES_PER_REQUEST", 10**6)
    rows = [f"+1 206 555 01{40 + n},{'b' * 1100}" for n in range(5)]
    rows[2] = "+1 206 555 0131,"  # Ada's number: enrolled already
    path = tmp_path / "long.csv"
    path.write_text("phone_number,background\n" + "\n".join(rows) + "\n", encoding="utf-8")

    ran = run(stack, "enroll", str(path))

    assert ran.code == 0, ran.err
    outcomes = [line.split()[:3] for line in ran.out.splitlines() if line.startswith("row")]
    assert [int(number) for _, number, _ in outcomes] == [1, 2, 3, 4, 5]
    assert [status for _, _, status in outcomes] == ["created", "created", "exists", "created", "created"]
    assert "4 created, 1 already enrolled, 0 with errors" in ran.out


def test_an_unreadable_csv_is_a_usage_error(stack: LocalStack, tmp_path: Path) -> None:
    ran = run(stack, "enroll", str(tmp_path / "missing.csv"))

    assert ran.code == 2
    assert "cannot read" in ran.err
    assert "Traceback" not in ran.err


# --- export ---------------------------------------------------------------------------------------------------


def test_an_export_lands_in_the_folder_checked_and_without_phone_numbers(
    stack: LocalStack, enrolled: Ran, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent: list[urllib.request.Request | str] = []
    real_urlopen = urllib.request.urlopen

    def spy(request: Any, *args: Any, **kwargs: Any) -> Any:
        sent.append(request)
        return real_urlopen(request, *args, **kwargs)

    monkeypatch.setattr(urllib.request, "urlopen", spy)
    folder = tmp_path / "study-data"

    ran = run(stack, "export", "--out", str(folder))

    assert ran.code == 0, ran.err
    names = {p.name for p in folder.iterdir()}
    assert {"participants.csv", "dictionary.csv", "dictionary.json", "manifest.json", "decisions.csv"} <= names
    assert not [n for n in names if n.endswith(".part")]
    with (folder / "participants.csv").open(encoding="utf-8") as file:
        exported = list(csv.DictReader(file))
    assert set(enrolled_ids(enrolled)) <= {row["id"] for row in exported}
    assert "phone_number" not in exported[0]
    assert "+1206555" not in (folder / "participants.csv").read_text(encoding="utf-8")
    assert " done: " in ran.out
    assert f"{len(names)} files in {folder}: each one's size and sha256 match" in ran.out
    # The presigned downloads go to moto's S3 without the API key.
    downloads = [r for r in sent if isinstance(r, str)]
    assert len(downloads) == len(names)
    assert all(url.startswith(stack.endpoint_url) for url in downloads)
    api_calls = [r for r in sent if isinstance(r, urllib.request.Request)]
    assert all(r.full_url.startswith(stack.base_url) for r in api_calls)


def test_a_download_that_is_not_what_the_export_wrote_is_refused(
    stack: LocalStack, enrolled: Ran, tmp_path: Path
) -> None:
    first = run(stack, "export", "--out", str(tmp_path / "first"), "--kinds", "participants")
    assert first.code == 0, first.err
    export_id = first.out.split()[1]
    s3 = aws(stack, "s3")
    bucket = stack.physical["ExportBucket"].ref
    s3.put_object(Bucket=bucket, Key=f"exports/{export_id}/participants.csv", Body=b"id\nsomeone-else\n")

    again = run(stack, "export", "--id", export_id, "--out", str(tmp_path / "again"))

    assert again.code == 1
    assert "participants.csv is not what the export wrote" in again.err
    assert not (tmp_path / "again" / "participants.csv").exists()
    assert not list((tmp_path / "again").glob(".*.part"))


def test_a_download_link_past_its_time_is_refused_with_s3s_reason(
    stack: LocalStack, enrolled: Ran, tmp_path: Path, wall_clock: WallClock
) -> None:
    first = run(stack, "export", "--out", str(tmp_path / "first"), "--kinds", "participants")
    assert first.code == 0, first.err
    wall_clock.ahead = 2 * 3600.0  # past EXPORT_URL_SECONDS for the links the API signs now
    try:
        again = run(stack, "export", "--id", first.out.split()[1], "--out", str(tmp_path / "again"))
    finally:
        wall_clock.ahead = 0.0

    assert again.code == 1
    assert "download of participants.csv refused (403: Request has expired)" in again.err


def test_an_export_the_api_refuses_shows_the_apis_reason(stack: LocalStack, tmp_path: Path) -> None:
    ran = run(stack, "export", "--out", str(tmp_path / "never"), "--status", "nonsense")

    assert ran.code == 1
    assert "POST /conversation/exports answered 422: The request is not valid" in ran.err
    assert "  status: Input should be 'active', 'paused', 'completed' or 'withdrawn'" in ran.err
    assert not (tmp_path / "never").exists()


def test_a_folder_with_files_in_it_is_not_written_into_without_force(stack: LocalStack, tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine", encoding="utf-8")

    ran = run(stack, "export", "--out", str(tmp_path))

    assert ran.code == 2
    assert "add --force" in ran.err


@dataclass(frozen=True)
class ScriptedApi(researcher.Api):
    """Answers an export job's polls from a script: one answer per call, the last one from then on."""

    answers: list[dict[str, Any]] = field(default_factory=list)

    def call(self, method: str, path: str, body: bytes | None = None, content_type: str = "") -> Any:
        return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]


def scripted(*answers: dict[str, Any]) -> ScriptedApi:
    return ScriptedApi("http://api.invalid", "k", "from --key", answers=list(answers))


def export_args(tmp_path: Path, *more: str) -> argparse.Namespace:
    return researcher.parser().parse_args(["export", "--out", str(tmp_path / "out"), *more])


@dataclass(frozen=True)
class RecordingApi(ScriptedApi):
    """A ScriptedApi that keeps each request's body."""

    bodies: list[str] = field(default_factory=list)

    def call(self, method: str, path: str, body: bytes | None = None, content_type: str = "") -> Any:
        self.bodies.append((body or b"").decode())
        return super().call(method, path, body, content_type)


def bulk_answer(*statuses: str) -> dict[str, Any]:
    rows = [
        {"row": n, "status": status, "participant_id": f"p{n}" if status == "created" else None}
        for n, status in enumerate(statuses, start=1)
    ]
    return {"rows": rows}


def test_rows_the_api_had_no_time_for_are_sent_again_and_keep_their_numbers(tmp_path: Path) -> None:
    path = tmp_path / "four.csv"
    path.write_text("phone_number\n+12065550141\n+12065550142\n+12065550143\n+12065550144\n", encoding="utf-8")
    api = RecordingApi(
        "http://api.invalid",
        "k",
        "from --key",
        answers=[
            bulk_answer("created", "created", "not_attempted", "not_attempted"),
            bulk_answer("created", "created"),
        ],
    )
    lines: list[str] = []

    code = researcher.enroll(api, str(path), lines.append)

    assert code == 0
    assert api.bodies[1] == "phone_number\n+12065550143\n+12065550144\n"  # only the rows not reached
    assert [line.split()[:3] for line in lines[:4]] == [["row", str(n), "created"] for n in range(1, 5)]
    assert lines[-1] == "4 created, 0 already enrolled, 0 with errors"


def test_a_request_that_reached_no_row_is_a_failure_not_a_loop(tmp_path: Path) -> None:
    path = tmp_path / "two.csv"
    path.write_text("phone_number\n+12065550151\n+12065550152\n", encoding="utf-8")
    api = scripted(bulk_answer("not_attempted", "not_attempted"))

    with pytest.raises(researcher.Failure, match="enrolled none of rows 1-2"):
        researcher.enroll(api, str(path), print)


def test_a_failed_export_prints_the_jobs_error(tmp_path: Path) -> None:
    api = scripted(
        {"id": "e1", "status": "queued", "request": {"kinds": ["decisions"]}},
        {"id": "e1", "status": "running"},
        {"id": "e1", "status": "failed", "error": "S3 refused the upload"},
    )
    lines: list[str] = []

    with pytest.raises(researcher.Failure, match="export e1 failed: S3 refused the upload"):
        researcher.export(api, export_args(tmp_path), lines.append, researcher.Pacing(pause=lambda _: None))

    assert lines == ["export e1 queued: decisions; no identifiers", "export e1 running", "export e1 failed"]


def test_an_export_still_running_at_the_timeout_says_how_to_fetch_it_later(tmp_path: Path) -> None:
    now = [0.0]
    pacing = researcher.Pacing(pause=lambda s: now.__setitem__(0, now[0] + s), clock=lambda: now[0])
    api = scripted({"id": "e2", "status": "running"})

    with pytest.raises(researcher.Failure, match=r"still running after 5 s; .*export --id e2"):
        researcher.export(api, export_args(tmp_path, "--timeout", "5"), print, pacing)


# --- timeline -------------------------------------------------------------------------------------------------


def test_a_timeline_shows_the_participant_then_their_record_in_time_order(stack: LocalStack, enrolled: Ran) -> None:
    ada = enrolled_ids(enrolled)[0]

    ran = run(stack, "timeline", ada, "--width", "100")

    assert ran.code == 0, ran.err
    lines = ran.out.splitlines()
    assert lines[0] == f"Participant {ada}"
    assert "active, arm default, INTAKE, consent not answered, timezone America/Los_Angeles" in lines[1]
    [enrolled_at] = [n for n, line in enumerate(lines) if "event     enrolled " in line]
    [greeting] = [n for n, line in enumerate(lines) if "out       [delivered] Hi Ada! I'm your habit coach" in line]
    assert enrolled_at < greeting
    assert all(len(line) <= 100 for line in lines)
    assert "+1206555" not in ran.out


def test_a_timeline_of_nobody_is_the_apis_404(stack: LocalStack) -> None:
    ran = run(stack, "timeline", "nobody")

    assert ran.code == 1
    assert "GET /conversation/participants/nobody answered 404: participant nobody not found" in ran.err


@pytest.mark.parametrize(
    ("decision", "line"),
    [
        (
            {"available": True, "probability": 0.5, "decision": "nudge", "treated": True},
            "p=0.50 nudge, sent (no delivery status yet), no reply",
        ),
        (
            {"available": True, "probability": 1, "decision": "nudge", "treated": True, "delivery_status": "delivered"}
            | {"replied": True, "reply_minutes": 12.4, "feedback_kind": "completed"},
            "p=1.00 nudge, sent (delivered), reply in 12 min: completed",
        ),
        (
            {"available": True, "probability": 1, "decision": "nudge", "cancelled_reason": "opted_out"},
            "p=1.00 nudge, not sent (opted_out), no reply",
        ),
        (
            {"available": True, "probability": 0.4, "decision": "no_nudge", "replied": True},
            "p=0.40 no_nudge, reply: unclassified",
        ),
        ({"available": False, "unavailable_reasons": ["quiet_hours", "paused"]}, "unavailable (quiet_hours, paused)"),
        ({"available": False, "missed": True, "missed_reason": "schedule_missing"}, "missed (schedule_missing)"),
    ],
)
def test_a_decision_point_is_one_line_of_what_was_decided_given_and_answered(
    decision: dict[str, Any], line: str
) -> None:
    when = {"local_date": "2026-12-02", "local_time": "07:30"}

    assert researcher._decision_line(when | decision) == f"decision  2026-12-02 07:30 local: {line}"


# --- settings and failures ------------------------------------------------------------------------------------


def test_a_wrong_key_is_named_by_where_it_came_from_never_by_its_value(stack: LocalStack) -> None:
    ran = run(stack, "participants", key="not-the-key-1234")

    assert ran.code == 1
    assert "answered 403: Forbidden" in ran.err
    assert "did not accept the key (from --key)" in ran.err
    assert "not-the-key-1234" not in ran.err + ran.out


def test_with_no_stack_running_it_says_so_and_how_to_start_it(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # free once closed: nothing listens there

    code = researcher.main(["participants"], environ={"PORT": str(port)})

    assert code == 1
    err = capsys.readouterr().err
    assert f"the stack is not running at http://127.0.0.1:{port}" in err
    assert "make run" in err
    assert "Traceback" not in err


def test_url_and_key_come_from_the_environment_and_the_key_stays_out_of_the_repr() -> None:
    args = researcher.parser().parse_args(["participants"])

    api = researcher.api_from(args, {"COACH_API_URL": "https://api.example.org/Prod/conversation/", "API_KEY": "s3"})

    assert (api.base_url, api.key, api.key_source) == ("https://api.example.org/Prod", "s3", "from API_KEY")
    assert "s3" not in repr(api).replace("https", "")
    default = researcher.api_from(args, {"PORT": "3100"})
    assert (default.base_url, default.key) == ("http://127.0.0.1:3100", "local-dev-key")
