"""The enrollment function's real handler on moto, with events shaped as API Gateway sends them."""

from __future__ import annotations

import json
from typing import Any

import pytest

from coach.domain.work import ConversationWork, WorkKind
from tests.support.api import LambdaContext, api_event, response_json
from tests.support.aws import Resources, received

ENROLL = {"phone_number": "+1 (206) 555-0100", "timezone": "America/Los_Angeles"}


def call(event: dict[str, Any]) -> dict[str, Any]:
    from functions.enrollment.app import lambda_handler

    response: dict[str, Any] = lambda_handler(event, LambdaContext())
    return response


def enroll(body: dict[str, Any] | None = None) -> dict[str, Any]:
    response = call(api_event("POST", "/conversation/participants", body=body or ENROLL))
    assert response["statusCode"] == 201, response["body"]
    participant: dict[str, Any] = response_json(response)
    return participant


def the_record(detail: dict[str, Any]) -> dict[str, Any]:
    """The participant record inside GET's answer (which adds where the conversation stands)."""
    from coach.domain.participant import Participant

    return {name: value for name, value in detail.items() if name in Participant.model_fields}


def test_enroll_canonicalises_the_phone_and_starts_intake(aws: Resources) -> None:
    participant = enroll()

    assert participant["phone_number"] == "+12065550100"
    assert participant["status"] == "active"
    assert participant["timezone"] == "America/Los_Angeles"
    assert participant["id"]
    assert participant["created_at"] == participant["updated_at"] == participant["enrolled_at"]
    stored = call(api_event("GET", f"/conversation/participants/{participant['id']}"))
    assert the_record(response_json(stored)) == participant


def test_enroll_puts_the_enrolled_event_on_the_participants_fifo_group(aws: Resources) -> None:
    participant = enroll()

    [queued] = received(aws.sqs, aws.queue_url)

    work = ConversationWork.model_validate_json(queued["Body"])
    assert work.kind is WorkKind.ENROLLED
    assert work.participant_id == participant["id"]
    assert queued["Attributes"]["MessageGroupId"] == participant["id"]


def test_enroll_without_timezone_takes_the_default(aws: Resources) -> None:
    participant = enroll({"phone_number": "206-555-0100", "name": "Ada"})

    assert participant["timezone"] == "America/New_York"
    assert participant["name"] == "Ada"


def test_the_same_number_again_is_409_in_any_format(aws: Resources) -> None:
    enroll()

    again = call(api_event("POST", "/conversation/participants", body={"phone_number": "(206) 555-0100"}))

    assert again["statusCode"] == 409
    assert response_json(again)["details"][0]["field"] == "phone_number"
    assert len(received(aws.sqs, aws.queue_url)) == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"phone_number": "12345"}, "phone_number"),
        ({"phone_number": "not a number"}, "phone_number"),
        ({"phone_number": "+12065550100", "timezone": "Mars/Olympus_Mons"}, "timezone"),
        ({"phone_number": "+12065550100", "timezone": "../../etc/passwd"}, "timezone"),
        ({"phone_number": "+12065550100", "timezone": ""}, "timezone"),
        ({"phone_number": 12065550100}, "phone_number"),
        ({"phone_number": None}, "phone_number"),
        ({"phone_number": ["+12065550100"]}, "phone_number"),
        ({"name": "no phone"}, "phone_number"),
        ({"phone_number": "+12065550100", "name": {"first": "A"}}, "name"),
        ({"phone_number": "+12065550100", "name": "x" * 500}, "name"),
        ({"phone_number": "+12065550100", "favourite_colour": "blue"}, "favourite_colour"),
        ({"phone_number": "+12065550100", "status": "active"}, "status"),
    ],
)
def test_invalid_enrollment_is_422_naming_the_field(aws: Resources, body: dict[str, Any], field: str) -> None:
    response = call(api_event("POST", "/conversation/participants", body=body))

    assert response["statusCode"] == 422, response["body"]
    error = response_json(response)
    assert field in [d["field"] for d in error["details"]]
    assert error["error"]
    assert received(aws.sqs, aws.queue_url) == []


@pytest.mark.parametrize(
    ("raw_body", "status"),
    [
        (None, 422),
        ("", 422),
        ("not json", 400),
        ("{", 400),
        ('{"phone_number": "+12065550100",}', 400),
        ("[]", 422),
        ("null", 422),
        ("42", 422),
        ('"+12065550100"', 422),
        ("\x00\x01\x02", 400),
        (json.dumps({"phone_number": "+12065550100", "background": "x" * 20_000}), 413),
        ("[" * 100_000, 413),
        ("[" * 10_000, 400),
        ('{"phone_number": ' + "[" * 5_000 + "]" * 5_000 + "}", 400),
        ('{"phone_number": "\ud800"}', 400),
        ('{"phone_number": "+12065550100", "name": "\\ud800"}', 400),
        ('{"phone_number": "+12065550100", "phone_number": 5}', 422),
        ('{"phone_number": 1e999999}', 422),
    ],
)
def test_no_body_makes_it_crash(aws: Resources, raw_body: str | None, status: int) -> None:
    event = api_event("POST", "/conversation/participants")
    event["body"] = raw_body

    response = call(event)

    assert response["statusCode"] == status, response["body"]
    assert set(response_json(response)) == {"error", "details"}


@pytest.mark.parametrize("content_type", ["application/x-www-form-urlencoded", "text/plain", None])
def test_a_json_body_is_read_as_json_whatever_the_content_type(aws: Resources, content_type: str | None) -> None:
    event = api_event("POST", "/conversation/participants", body=ENROLL)
    for section in ("headers", "multiValueHeaders"):
        del event[section]["Content-Type"]
    if content_type:
        event["headers"]["content-type"] = content_type

    assert call(event)["statusCode"] == 201


def test_a_base64_body_is_decoded(aws: Resources) -> None:
    import base64

    event = api_event("POST", "/conversation/participants")
    event["body"] = base64.b64encode(json.dumps(ENROLL).encode()).decode()
    event["isBase64Encoded"] = True

    assert call(event)["statusCode"] == 201


def test_list_pages_and_filters_by_status(aws: Resources) -> None:
    ids = [enroll({"phone_number": f"+1206555{n:04d}"})["id"] for n in range(5)]
    call(api_event("PUT", f"/conversation/participants/{ids[1]}", body={"status": "paused"}))

    first = response_json(call(api_event("GET", "/conversation/participants", query={"limit": "2"})))
    rest = response_json(
        call(api_event("GET", "/conversation/participants", query={"limit": "10", "next_token": first["next_token"]}))
    )
    paused = response_json(call(api_event("GET", "/conversation/participants", query={"status": "paused"})))

    assert [p["id"] for p in first["items"]] + [p["id"] for p in rest["items"]] == ids
    assert rest["next_token"] is None
    assert [p["id"] for p in paused["items"]] == [ids[1]]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"limit": "0"}, "limit"),
        ({"limit": "101"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"status": "sleeping"}, "status"),
        ({"next_token": "forged"}, "next_token"),
        ({"next_token": "x" * 5000}, "next_token"),
    ],
)
def test_bad_list_queries_are_4xx_naming_the_parameter(aws: Resources, query: dict[str, str], field: str) -> None:
    response = call(api_event("GET", "/conversation/participants", query=query))

    assert response["statusCode"] in (400, 422), response["body"]
    assert field in [d["field"] for d in response_json(response)["details"]]


def test_update_changes_only_the_fields_given_and_records_the_status_change(aws: Resources) -> None:
    participant = enroll({**ENROLL, "name": "Ada", "background": "night shifts"})

    response = call(
        api_event("PUT", f"/conversation/participants/{participant['id']}", body={"status": "paused", "name": "Ada L."})
    )

    updated = response_json(response)
    assert response["statusCode"] == 200
    assert updated["status"] == "paused"
    assert updated["name"] == "Ada L."
    assert updated["background"] == "night shifts"
    assert updated["version"] == participant["version"] + 1
    assert updated["updated_at"] >= participant["updated_at"]

    from coach.bootstrap import enrollment_service

    store = enrollment_service().store
    kinds = [e.kind for e in store.list_events(participant["id"], limit=10, next_token=None).items]
    assert kinds == ["enrolled", "participant_updated", "status_changed"]
    assert "Ada L." in store.get_flow_state(participant["id"]).participant_background


def test_update_to_a_taken_number_is_409_and_changes_nothing(aws: Resources) -> None:
    a = enroll()
    enroll({"phone_number": "+12065550101"})

    response = call(api_event("PUT", f"/conversation/participants/{a['id']}", body={"phone_number": "+12065550101"}))

    assert response["statusCode"] == 409
    assert response_json(call(api_event("GET", f"/conversation/participants/{a['id']}")))["phone_number"] == (
        "+12065550100"
    )


def test_update_to_a_new_number_frees_the_old_one(aws: Resources) -> None:
    a = enroll()

    moved = call(api_event("PUT", f"/conversation/participants/{a['id']}", body={"phone_number": "+1 206 555 0199"}))

    assert response_json(moved)["phone_number"] == "+12065550199"
    assert enroll()["phone_number"] == "+12065550100"


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"status": "deleted"}, 422, "status"),
        ({"status": None}, 422, "status"),
        ({"phone_number": None}, 422, "phone_number"),
        ({"phone_number": "555"}, 422, "phone_number"),
        ({"timezone": "Nowhere/Land"}, 422, "timezone"),
        ({"id": "other"}, 422, "id"),
        ({"version": 99}, 422, "version"),
    ],
)
def test_invalid_updates_are_4xx_and_change_nothing(
    aws: Resources, body: dict[str, Any], status: int, field: str
) -> None:
    participant = enroll()

    response = call(api_event("PUT", f"/conversation/participants/{participant['id']}", body=body))

    assert response["statusCode"] == status, response["body"]
    assert field in [d["field"] for d in response_json(response)["details"]]
    assert the_record(response_json(call(api_event("GET", f"/conversation/participants/{participant['id']}")))) == (
        participant
    )


def test_unknown_participant_is_404_on_every_route(aws: Resources) -> None:
    for method, path, body in [
        ("GET", "/conversation/participants/nobody", None),
        ("PUT", "/conversation/participants/nobody", {"status": "paused"}),
        ("DELETE", "/conversation/participants/nobody", None),
        ("POST", "/conversation/participants/nobody/reset", None),
        ("GET", "/conversation/participants/nobody/messages", None),
        ("DELETE", "/conversation/participants/nobody/safety-flag", None),
    ]:
        response = call(api_event(method, path, body=body))
        assert response["statusCode"] == 404, (method, path, response["body"])
        assert "nobody" in response_json(response)["error"]


@pytest.mark.parametrize("participant_id", ["x" * 5000, "a b", "\ud800", "../etc", "%00"])
def test_an_absurd_id_is_4xx_not_a_dynamodb_error(aws: Resources, participant_id: str) -> None:
    event = api_event("GET", "/conversation/participants/placeholder")
    event["pathParameters"] = {"id": participant_id}
    event["path"] = f"/conversation/participants/{participant_id}"

    response = call(event)

    assert response["statusCode"] in (404, 422)  # 404: no route matches such a path at all
    assert set(response_json(response)) == {"error", "details"}


def test_delete_removes_everything_and_the_number_can_enroll_again(aws: Resources) -> None:
    participant = enroll()

    deleted = call(api_event("DELETE", f"/conversation/participants/{participant['id']}"))

    assert deleted["statusCode"] == 204
    assert not deleted.get("body")
    assert call(api_event("GET", f"/conversation/participants/{participant['id']}"))["statusCode"] == 404
    left = aws.dynamodb.scan(TableName=aws.table_name)["Items"]
    # only the audit trail, which no delete removes, and the study's enrollment count
    assert {item["PK"]["S"] for item in left} == {"AUDIT", "STUDY#allocation"}
    text = json.dumps(left)
    assert "+12065550100" not in text  # ... and which keeps no personal data of the deleted participant
    assert enroll()["id"] != participant["id"]


def test_a_delete_out_of_time_answers_202_with_what_is_left_and_its_repeat_finishes_with_204(
    aws: Resources, monkeypatch: pytest.MonkeyPatch
) -> None:
    import functions.enrollment.app as app

    participant = enroll()
    path = f"/conversation/participants/{participant['id']}"

    # When the DELETE has no time for a single batch
    monkeypatch.setattr(app, "DELETE_SECONDS", 0.0)
    first = call(api_event("DELETE", path))

    # Then it answers 202 with what is left, and the participant is gone for every reader already
    assert first["statusCode"] == 202
    progress = response_json(first)
    assert progress["participant_id"] == participant["id"]
    assert (progress["done"], progress["items_deleted"]) == (False, 0)
    assert progress["items_left"] >= 1  # the enrolled event
    assert call(api_event("GET", path))["statusCode"] == 404
    listed = response_json(call(api_event("GET", "/conversation/participants")))
    assert participant["id"] not in {p["id"] for p in listed["items"]}
    assert enroll()["phone_number"] == participant["phone_number"]  # the number is free at once

    # When it is repeated with time to finish: 204, then nothing is left to delete
    monkeypatch.setattr(app, "DELETE_SECONDS", 8.0)
    assert call(api_event("DELETE", path))["statusCode"] == 204
    assert call(api_event("DELETE", path))["statusCode"] == 404
    trail = response_json(call(api_event("GET", "/conversation/audit", query={"participant_id": participant["id"]})))
    assert [e["action"] for e in trail["items"]] == ["create", "delete"]


def test_reset_returns_to_intake_keeps_the_transcript_and_queues_the_reset(aws: Resources) -> None:
    from coach.bootstrap import enrollment_service
    from coach.domain.flow import SubState
    from coach.domain.message import Direction, Message

    participant = enroll()
    store = enrollment_service().store
    flow = store.get_flow_state(participant["id"])
    store.save_flow_state(flow.model_copy(update={"sub_state": SubState.FEEDBACK, "last_habit_prompt": "walk"}))
    store.put_message(
        Message(
            participant_id=participant["id"],
            message_id="SM1",
            direction=Direction.INBOUND,
            body="hi",
            at=flow.created_at,
        )
    )

    response = call(api_event("POST", f"/conversation/participants/{participant['id']}/reset"))

    assert response["statusCode"] == 200
    assert response_json(response)["sub_state"] == "INTAKE"
    after = store.get_flow_state(participant["id"])
    assert after.sub_state is SubState.INTAKE
    assert after.last_habit_prompt is None
    assert after.participant_background == flow.participant_background
    transcript = response_json(call(api_event("GET", f"/conversation/participants/{participant['id']}/messages")))
    assert [m["body"] for m in transcript["items"]] == ["hi"]
    kinds = [ConversationWork.model_validate_json(m["Body"]).kind for m in received(aws.sqs, aws.queue_url)]
    assert kinds == [WorkKind.ENROLLED, WorkKind.RESET]


def test_transcript_pages_oldest_first(aws: Resources) -> None:
    from datetime import timedelta

    from coach.bootstrap import enrollment_service
    from coach.domain.message import Direction, Message

    participant = enroll()
    store = enrollment_service().store
    start = store.get_flow_state(participant["id"]).created_at
    for n in range(5):
        store.put_message(
            Message(
                participant_id=participant["id"],
                message_id=f"SM{n}",
                direction=Direction.INBOUND if n % 2 else Direction.OUTBOUND,
                body=f"m{n}",
                at=start + timedelta(seconds=n),
            )
        )
    path = f"/conversation/participants/{participant['id']}/messages"

    first = response_json(call(api_event("GET", path, query={"limit": "3"})))
    rest = response_json(call(api_event("GET", path, query={"limit": "3", "next_token": first["next_token"]})))

    assert [m["body"] for m in first["items"]] == ["m0", "m1", "m2"]
    assert [m["body"] for m in rest["items"]] == ["m3", "m4"]
    assert rest["next_token"] is None
    assert first["items"][0]["direction"] == "outbound"


def test_the_api_serves_its_openapi_document(aws: Resources) -> None:
    response = call(api_event("GET", "/conversation/openapi.json"))

    document = response_json(response)
    assert response["statusCode"] == 200
    assert "/conversation/participants/{id}" in document["paths"]
    assert document["components"]["securitySchemes"]["api_key"]["name"] == "x-api-key"


def test_a_queue_failure_keeps_the_participant_and_answers_201(aws: Resources) -> None:
    aws.sqs.delete_queue(QueueUrl=aws.queue_url)

    participant = enroll()

    assert (
        response_json(call(api_event("GET", f"/conversation/participants/{participant['id']}")))["id"]
        == (participant["id"])
    )


# -- the schedules follow the record (issue 8) ---------------------------------------------------------


def coach_in_feedback(participant_id: str, hhmm: str = "07:30") -> None:
    """As if intake had ended with a daily nudge at `hhmm`: the state a finished intake saves, reconciled."""
    from coach.bootstrap import enrollment_service
    from coach.domain.flow import DailySchedule, SubState
    from coach.services.schedules import reconcile_stored

    service = enrollment_service()
    flow = service.store.get_flow_state(participant_id)
    service.store.save_flow_state(
        flow.model_copy(
            update={"consent": True, "sub_state": SubState.FEEDBACK, "daily_schedule": DailySchedule(time=hhmm)}
        )
    )
    assert service.scheduler is not None
    reconcile_stored(service.store, service.scheduler, participant_id, service.clock.now())


def schedule_of(aws: Resources, participant_id: str) -> dict[str, Any] | None:
    import boto3

    try:
        found: dict[str, Any] = boto3.client("scheduler").get_schedule(
            Name=f"nudge-{participant_id}", GroupName=aws.schedule_group
        )
    except Exception:
        return None
    return found


def test_a_timezone_change_through_the_api_moves_the_daily_schedule(aws: Resources) -> None:
    participant = enroll()
    coach_in_feedback(participant["id"])
    assert schedule_of(aws, participant["id"])["ScheduleExpressionTimezone"] == "America/Los_Angeles"  # type: ignore[index]

    response = call(
        api_event("PUT", f"/conversation/participants/{participant['id']}", body={"timezone": "Asia/Tokyo"})
    )

    assert response["statusCode"] == 200, response["body"]
    schedule = schedule_of(aws, participant["id"])
    assert schedule is not None
    assert (schedule["ScheduleExpression"], schedule["ScheduleExpressionTimezone"]) == (
        "cron(30 7 * * ? *)",
        "Asia/Tokyo",
    )


def test_withdrawing_removes_the_schedule_and_active_again_restores_it(aws: Resources) -> None:
    participant = enroll()
    coach_in_feedback(participant["id"])
    path = f"/conversation/participants/{participant['id']}"

    assert call(api_event("PUT", path, body={"status": "withdrawn"}))["statusCode"] == 200
    assert schedule_of(aws, participant["id"]) is None
    assert call(api_event("PUT", path, body={"status": "active"}))["statusCode"] == 200

    assert schedule_of(aws, participant["id"]) is not None


def test_deleting_removes_the_schedule(aws: Resources) -> None:
    participant = enroll()
    coach_in_feedback(participant["id"])

    assert call(api_event("DELETE", f"/conversation/participants/{participant['id']}"))["statusCode"] == 204

    assert schedule_of(aws, participant["id"]) is None


@pytest.mark.parametrize(
    ("timezone", "suggestion"),
    [
        ("EST", "America/New_York"),
        ("PST8PDT", "America/Los_Angeles"),
        ("Etc/GMT+5", "America/New_York"),
        ("america/los_angeles", "America/Los_Angeles"),
        ("US/Eastern", "America/New_York"),
    ],
)
def test_a_timezone_without_a_region_is_422_with_the_zone_it_means(
    aws: Resources, timezone: str, suggestion: str
) -> None:
    participant = enroll()

    response = call(api_event("PUT", f"/conversation/participants/{participant['id']}", body={"timezone": timezone}))
    created = call(
        api_event("POST", "/conversation/participants", body={"phone_number": "+12065550199", "timezone": timezone})
    )

    for answer in (response, created):
        assert answer["statusCode"] == 422
        [detail] = response_json(answer)["details"]
        assert detail["field"] == "timezone"
        assert suggestion in detail["message"]
    assert response_json(call(api_event("GET", f"/conversation/participants/{participant['id']}")))["timezone"] == (
        "America/Los_Angeles"
    )


def test_the_research_events_page_oldest_first(aws: Resources) -> None:
    participant = enroll()
    path = f"/conversation/participants/{participant['id']}"
    call(api_event("PUT", path, body={"status": "paused"}))

    first = response_json(call(api_event("GET", f"{path}/events", query={"limit": "1"})))
    rest = response_json(call(api_event("GET", f"{path}/events", query={"next_token": first["next_token"]})))

    assert [e["kind"] for e in first["items"]] == ["enrolled"]
    assert [e["kind"] for e in rest["items"]] == ["participant_updated", "status_changed"]
    assert rest["items"][1]["data"] == {"from": "active", "to": "paused"}
    assert call(api_event("GET", "/conversation/participants/nobody/events"))["statusCode"] == 404


@pytest.mark.parametrize("field", ["phone_number", "timezone", "status"])
def test_a_field_that_may_not_be_cleared_is_422_naming_it_and_nothing_changes(aws: Resources, field: str) -> None:
    participant = enroll()
    path = f"/conversation/participants/{participant['id']}"

    response = call(api_event("PUT", path, body={field: None, "name": "Grace"}))

    assert response["statusCode"] == 422
    assert response_json(response)["details"] == [{"field": field, "message": "cannot be null"}]
    assert the_record(response_json(call(api_event("GET", path)))) == participant  # the name did not change either


def test_null_clears_a_text_field_and_the_openapi_document_says_so(aws: Resources) -> None:
    participant = enroll({**ENROLL, "name": "Ada"})
    path = f"/conversation/participants/{participant['id']}"

    response = call(api_event("PUT", path, body={"name": None}))

    assert response["statusCode"] == 200
    assert response_json(response)["name"] is None
    document = response_json(call(api_event("GET", "/conversation/openapi.json")))
    fields = document["components"]["schemas"]["UpdateParticipant"]["properties"]
    assert "null clears" in fields["name"]["description"]
    assert "may not be null" in fields["timezone"]["description"]


def test_a_participant_shows_sub_state_profile_consent_arm_and_the_next_nudge(aws: Resources) -> None:
    participant = enroll()
    coach_in_feedback(participant["id"], "07:30")

    detail = response_json(call(api_event("GET", f"/conversation/participants/{participant['id']}")))

    assert (detail["sub_state"], detail["consent"], detail["daily_time"], detail["study_arm"]) == (
        "FEEDBACK",
        True,
        "07:30",
        "default",  # the one arm of a study without a design
    )
    assert set(detail["habit_profile"]) >= {"habit_domain", "motivation", "prompt_anchor", "preferred_time"}
    from datetime import datetime
    from zoneinfo import ZoneInfo

    next_nudge = datetime.fromisoformat(detail["next_nudge_at"]).astimezone(ZoneInfo("America/Los_Angeles"))
    assert next_nudge.strftime("%H:%M") == "07:30"
    assert next_nudge > datetime.now(ZoneInfo("UTC"))
    call(api_event("PUT", f"/conversation/participants/{participant['id']}", body={"status": "withdrawn"}))
    assert (
        response_json(call(api_event("GET", f"/conversation/participants/{participant['id']}")))["next_nudge_at"]
        is None
    )


def test_the_decision_points_page_oldest_first(aws: Resources) -> None:
    from coach.bootstrap import enrollment_service
    from coach.domain.decisions import DecisionPoint

    participant = enroll()
    store = enrollment_service().store
    from coach.adapters.dynamodb_conversation import DynamoDBConversationStore

    conversations = DynamoDBConversationStore(aws.table_name)
    now = store.get_flow_state(participant["id"]).created_at
    rows = [
        DecisionPoint(
            decision_id=f"nudge#{participant['id']}#2026-06-0{n}",
            participant_id=participant["id"],
            scheduled_at=now,
            local_date=f"2026-06-0{n}",
            local_time="07:30",
            timezone="America/Los_Angeles",
            available=True,
            probability=0.5,
            decision="nudge" if n % 2 else "no_nudge",
            created_at=now,
            updated_at=now,
        )
        for n in (3, 1, 2)
    ]
    conversations.save_turn(store.get_flow_state(participant["id"]), decisions=rows)
    path = f"/conversation/participants/{participant['id']}/decisions"

    first = response_json(call(api_event("GET", path, query={"limit": "2"})))
    rest = response_json(call(api_event("GET", path, query={"next_token": first["next_token"]})))

    assert [d["local_date"] for d in first["items"] + rest["items"]] == ["2026-06-01", "2026-06-02", "2026-06-03"]
    assert call(api_event("GET", "/conversation/participants/nobody/decisions"))["statusCode"] == 404


def test_the_audit_names_the_researcher_records_an_updates_before_and_after_and_a_deletes_tombstone(
    aws: Resources,
) -> None:
    import boto3

    # Given a researcher's named API key (API Gateway passes its id; its name is the researcher's)
    key = boto3.client("apigateway").create_api_key(name="dr-ada", value="k" * 24, enabled=True)

    def as_ada(method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        event = api_event(method, path, body=body)
        event["requestContext"]["identity"]["apiKeyId"] = key["id"]
        event["requestContext"]["identity"]["sourceIp"] = "198.51.100.7"
        return call(event)

    created = as_ada("POST", "/conversation/participants", ENROLL)
    participant = response_json(created)
    path = f"/conversation/participants/{participant['id']}"
    as_ada("PUT", path, {"name": "Ada", "status": "paused"})
    as_ada("POST", f"{path}/reset")

    trail = response_json(call(api_event("GET", "/conversation/audit", query={"participant_id": participant["id"]})))
    create, update, _reset = trail["items"]
    assert [e["action"] for e in trail["items"]] == ["create", "update", "reset"]
    assert {(e["researcher"], e["key_id"], e["source_ip"]) for e in trail["items"]} == {
        ("dr-ada", key["id"], "198.51.100.7")
    }
    assert create["changes"]["phone_number"] == {"before": None, "after": "+12065550100"}
    assert update["changes"] == {
        "name": {"before": None, "after": "Ada"},
        "status": {"before": "active", "after": "paused"},
    }

    # When the participant is deleted
    as_ada("DELETE", path)

    # Then their entries stay, with the personal values erased, and a tombstone ends them
    after = response_json(call(api_event("GET", "/conversation/audit", query={"participant_id": participant["id"]})))
    assert [e["action"] for e in after["items"]] == ["create", "update", "reset", "delete"]
    assert after["items"][0]["changes"]["phone_number"] == {"before": None, "after": "[erased]"}
    assert after["items"][1]["changes"]["name"] == {"before": None, "after": "[erased]"}
    assert after["items"][1]["changes"]["status"] == {"before": "active", "after": "paused"}  # not personal
    tombstone = after["items"][-1]
    assert (tombstone["researcher"], tombstone["participant_id"], tombstone["changes"]) == (
        "dr-ada",
        participant["id"],
        {},
    )
    assert "+12065550100" not in json.dumps(after)
    assert "Ada" not in json.dumps(after)


def test_the_audit_cannot_be_changed_through_the_api(aws: Resources) -> None:
    for method in ("POST", "PUT", "DELETE"):
        response = call(api_event(method, "/conversation/audit"))
        assert response["statusCode"] in (404, 405), method


def test_a_safety_flag_shows_on_the_participant_and_clearing_it_is_audited_once(aws: Resources) -> None:
    # Given a participant a text flagged (as a turn saves it)
    from datetime import UTC, datetime

    from coach.bootstrap import enrollment_service
    from coach.domain.flow import SafetyReview

    participant_id = enroll()["id"]
    store = enrollment_service().store
    flow = store.get_flow_state(participant_id)
    review = SafetyReview(category="crisis", rule="crisis.kill_myself", flagged_at=datetime(2026, 6, 1, tzinfo=UTC))
    store.save_flow_state(flow.model_copy(update={"safety_review": review}))
    shown = response_json(call(api_event("GET", f"/conversation/participants/{participant_id}")))
    assert (shown["needs_review"], shown["safety_review"]["rule"]) == (True, "crisis.kill_myself")

    # When a researcher clears it, with a note too long, then with one that fits, then again
    path = f"/conversation/participants/{participant_id}/safety-flag"
    too_long = call(api_event("DELETE", path, query={"note": "x" * 501}))
    cleared = call(api_event("DELETE", path, query={"note": "spoke to them"}))
    again = call(api_event("DELETE", path))

    # Then the long note is refused naming it, the flag goes once, and the trail has one entry with the note
    assert too_long["statusCode"] == 422
    assert "note" in too_long["body"]
    assert cleared["statusCode"] == 200, cleared["body"]
    assert response_json(cleared)["needs_review"] is False
    assert again["statusCode"] == 404
    assert "no safety flag" in response_json(again)["error"]
    trail = response_json(call(api_event("GET", "/conversation/audit", query={"participant_id": participant_id})))
    [entry] = [e for e in trail["items"] if e["action"] == "clear_flag"]
    assert (entry["details"]["rule"], entry["details"]["note"]) == ("crisis.kill_myself", "spoke to them")
