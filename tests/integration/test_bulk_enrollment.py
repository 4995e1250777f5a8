"""Bulk enrollment through the enrollment function's real handler on moto (issue 10): a CSV or a JSON list,
validated row by row; a bad row does not stop the good ones; the same rows again enroll nobody twice."""

from __future__ import annotations

from typing import Any

from tests.support.api import LambdaContext, api_event, response_json
from tests.support.aws import Resources, received

CSV = """phone_number,name,timezone
+1 206 555 0101,Ada,America/Los_Angeles
(206) 555-0102,Grace,EST
not a number,Alan,
+12065550104,,Europe/London
"""


def call(event: dict[str, Any]) -> dict[str, Any]:
    from functions.enrollment.app import lambda_handler

    response: dict[str, Any] = lambda_handler(event, LambdaContext())
    return response


def bulk(body: Any = None, raw: str | None = None, content_type: str = "application/json") -> dict[str, Any]:
    event = api_event(
        "POST", "/conversation/participants/bulk", body=body, raw_body=raw, headers={"Content-Type": content_type}
    )
    return call(event)


def test_a_csv_enrolls_the_good_rows_and_says_what_to_fix_in_the_others(aws: Resources) -> None:
    response = bulk(raw=CSV, content_type="text/csv")

    assert response["statusCode"] == 200, response["body"]
    result = response_json(response)
    assert (result["created"], result["exists"], result["errors"]) == (2, 0, 2)
    statuses = [(r["row"], r["status"]) for r in result["rows"]]
    assert statuses == [(1, "created"), (2, "error"), (3, "error"), (4, "created")]
    assert "America/New_York" in result["rows"][1]["errors"][0]["message"]  # EST: the zone it means
    assert result["rows"][2]["errors"][0]["field"] == "phone_number"
    listed = response_json(call(api_event("GET", "/conversation/participants")))["items"]
    assert sorted(p["phone_number"] for p in listed) == ["+12065550101", "+12065550104"]
    assert len(received(aws.sqs, aws.queue_url)) == 2  # each greeted once


def test_the_same_rows_again_enroll_nobody_twice(aws: Resources) -> None:
    rows = {"participants": [{"phone_number": "+12065550111"}, {"phone_number": "+12065550112", "name": "Bo"}]}
    first = response_json(bulk(rows))

    again = response_json(bulk(rows))

    assert [r["status"] for r in first["rows"]] == ["created", "created"]
    assert [r["status"] for r in again["rows"]] == ["exists", "exists"]
    assert [r["participant_id"] for r in again["rows"]] == [r["participant_id"] for r in first["rows"]]
    assert len(response_json(call(api_event("GET", "/conversation/participants")))["items"]) == 2


def test_a_csv_without_the_phone_column_or_with_an_unknown_one_is_422(aws: Resources) -> None:
    for text, words in [
        ("name\nAda\n", "phone_number"),
        ("phone_number,age\n+12065550101,33\n", "unknown columns age"),
    ]:
        response = bulk(raw=text, content_type="text/csv")
        assert response["statusCode"] == 422
        assert words in response_json(response)["details"][0]["message"]


def test_neither_or_both_forms_are_422_and_a_json_row_of_the_wrong_type_is_a_row_error(aws: Resources) -> None:
    assert bulk({})["statusCode"] == 422
    assert bulk({"csv": "phone_number\n", "participants": []})["statusCode"] == 422
    result = response_json(bulk({"participants": [{"phone_number": 12065550100}, {"phone_number": "+12065550121"}]}))
    assert [r["status"] for r in result["rows"]] == ["error", "created"]


def test_a_bulk_enrollment_is_on_the_audit_trail(aws: Resources) -> None:
    bulk({"participants": [{"phone_number": "+12065550131"}, {"phone_number": "oops"}]})

    trail = response_json(call(api_event("GET", "/conversation/audit")))["items"]

    assert [e["action"] for e in trail] == ["create", "bulk_enroll"]
    assert trail[-1]["details"] == {"rows": 2, "created": 1, "exists": 0, "error": 1, "not_attempted": 0}


def test_a_csv_over_the_other_routes_body_limit_is_taken_and_one_over_its_own_is_told_why(aws: Resources) -> None:
    # 20 rows with a quoted background of ~1,000 characters each: ~21 KB, over the other routes' 16 KiB body
    # limit; 200 such rows (the most per request) stay under the CSV's own 256,000 characters.
    background = '"Works nights, ""early"" riser, two kids, ' + "x" * 950 + '"'
    lines = [f"+1206555{n:04d},{background}" for n in range(20)]
    text = "phone_number,background\n" + "\n".join(lines) + "\n"
    assert len(text) > 16_384
    assert 200 * len(lines[0]) < 256_000

    response = bulk(raw=text, content_type="text/csv")
    assert response["statusCode"] == 200, response["body"][:500]
    assert response_json(response)["created"] == 20

    too_long = "phone_number,background\n" + "\n".join([lines[0]] * 260) + "\n"
    refused = bulk(raw=too_long, content_type="text/csv")
    assert refused["statusCode"] == 422, refused["body"][:500]
    assert response_json(refused)["details"][0]["field"] == "csv"


class RunningOut(LambdaContext):
    """An invocation whose remaining time drops by one second each time the handler asks."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def get_remaining_time_in_millis(self) -> int:  # type: ignore[override]
        self.seconds -= 1
        return int(self.seconds * 1000)


def test_rows_not_reached_in_the_requests_time_are_answered_and_the_same_file_again_finishes(aws: Resources) -> None:
    from functions.enrollment.app import lambda_handler

    rows = {"participants": [{"phone_number": f"+1206555012{n}"} for n in range(6)]}
    event = api_event("POST", "/conversation/participants/bulk", body=rows)

    # 6 s left: rows are started while at least 3 s remain, so 3 are enrolled and 3 are left
    first = lambda_handler(event, RunningOut(6))
    again = lambda_handler(event, LambdaContext())

    assert first["statusCode"] == 200, first["body"]
    cut = response_json(first)
    assert (cut["created"], cut["not_attempted"]) == (3, 3)
    assert [r["status"] for r in cut["rows"]] == ["created"] * 3 + ["not_attempted"] * 3
    assert "send these rows again" in cut["rows"][3]["errors"][0]["message"]
    finished = response_json(again)
    assert (finished["created"], finished["exists"], finished["not_attempted"]) == (3, 3, 0)
    assert [r["participant_id"] for r in finished["rows"][:3]] == [r["participant_id"] for r in cut["rows"][:3]]
    assert len(response_json(call(api_event("GET", "/conversation/participants")))["items"]) == 6
    assert len(received(aws.sqs, aws.queue_url)) == 6  # each greeted once, over both requests
    trail = response_json(call(api_event("GET", "/conversation/audit")))["items"]
    bulk_entries = [e for e in trail if e["action"] == "bulk_enroll"]
    assert sorted(e["details"]["not_attempted"] for e in bulk_entries) == [0, 3]
