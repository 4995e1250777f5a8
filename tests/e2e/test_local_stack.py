"""The local stack as a researcher meets it: `python -m infra.local`, then the enrollment API over HTTP.

Given the stack started on a free port with a chosen key, when a researcher enrolls, lists, updates
and deletes participants, then the answers are those of the deployed API (docs/architecture.md, 6 "The local
stack"; issue 2).
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.local_stack import RunningStack, api_key_ids, free_port, start_stack

pytestmark = pytest.mark.e2e

PARTICIPANTS = "/conversation/participants"
API_KEY = "e2e-secret-key"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    running = start_stack(tmp_path_factory.mktemp("local-stack"), port=free_port(), api_key=API_KEY)
    yield running
    running.stop()


def enroll(stack: RunningStack, phone: str, **fields: str) -> dict[str, object]:
    reply = stack.request("POST", PARTICIPANTS, {"phone_number": phone, **fields})
    assert reply.status == 201, reply.body
    created = reply.json()
    assert isinstance(created, dict)
    return created


def test_the_stack_uses_the_port_and_api_key_it_was_given(stack: RunningStack) -> None:
    output = stack.output()
    assert f"http://127.0.0.1:{stack.port}" in output
    # A key from the shell is never printed: the banner names its researcher and the variable.
    assert API_KEY not in output
    assert "local-researcher  (key from API_KEY)" in output
    assert '-H "x-api-key: $API_KEY"' in output  # the curl line is ready to paste where API_KEY is set

    assert stack.request("GET", PARTICIPANTS, key="local-dev-key").status == 403
    assert stack.request("GET", PARTICIPANTS).status == 200


def test_enroll_conflict_delete_and_enroll_again(stack: RunningStack) -> None:
    body = {"phone_number": "+1 (206) 555-0100", "timezone": "America/Los_Angeles"}

    first = stack.request("POST", PARTICIPANTS, body)
    assert first.status == 201, first.body
    participant = first.json()
    assert participant["phone_number"] == "+12065550100"
    assert participant["status"] == "active"
    assert participant["timezone"] == "America/Los_Angeles"
    assert {"id", "created_at"} <= participant.keys()

    again = stack.request("POST", PARTICIPANTS, body)
    assert again.status == 409
    assert again.json()["error"]

    deleted = stack.request("DELETE", f"{PARTICIPANTS}/{participant['id']}")
    assert deleted.status == 204
    assert stack.request("GET", f"{PARTICIPANTS}/{participant['id']}").status == 404

    assert stack.request("POST", PARTICIPANTS, body).status == 201


def test_requests_without_the_key_are_forbidden_as_api_gateway_does(stack: RunningStack) -> None:
    body = {"phone_number": "+1 206 555 0101"}

    for key in (None, "wrong-key"):
        reply = stack.request("POST", PARTICIPANTS, body, key=key)
        assert reply.status == 403
        assert reply.json() == {"message": "Forbidden"}

    assert stack.request("POST", PARTICIPANTS, body).status == 201  # nothing was created before


def test_an_invalid_phone_number_is_422_naming_the_field(stack: RunningStack) -> None:
    reply = stack.request("POST", PARTICIPANTS, {"phone_number": "12345"})

    assert reply.status == 422
    error = reply.json()
    assert error["error"]
    assert "phone_number" in str(error["details"])


def test_list_get_and_pause(stack: RunningStack) -> None:
    created = enroll(stack, "+1 206 555 0102", timezone="America/Chicago")
    path = f"{PARTICIPANTS}/{created['id']}"

    listed = stack.request("GET", f"{PARTICIPANTS}?limit=100")
    assert listed.status == 200
    assert created["id"] in [item["id"] for item in listed.json()["items"]]

    fetched = stack.request("GET", path)
    assert fetched.status == 200
    assert fetched.json()["phone_number"] == "+12065550102"

    paused = stack.request("PUT", path, {"status": "paused"})
    assert paused.status == 200, paused.body
    assert paused.json()["status"] == "paused"
    assert stack.request("GET", path).json()["status"] == "paused"


def test_curl_d_without_a_content_type_still_enrolls(stack: RunningStack) -> None:
    # curl -d sends application/x-www-form-urlencoded, a binary media type in the template: the body
    # reaches the handler base64-encoded, as on AWS, and is still read as JSON.
    raw = b'{"phone_number": "+1 206 555 0142"}'

    reply = stack.request("POST", PARTICIPANTS, raw=raw, headers={"content-type": "application/x-www-form-urlencoded"})

    assert reply.status == 201, reply.body
    assert reply.json()["phone_number"] == "+12065550142"


def test_unknown_routes_get_api_gateways_missing_token_answer(stack: RunningStack) -> None:
    for method, path in (("GET", "/nowhere"), ("PATCH", PARTICIPANTS), ("GET", "/conversation")):
        reply = stack.request(method, path)
        assert reply.status == 403, (method, path)
        assert reply.json() == {"message": "Missing Authentication Token"}


def test_named_researchers_and_api_key_all_get_in_and_no_key_is_printed(tmp_path: Path) -> None:
    alice, bob = "alice-e2e-key-long-enough-for-aws", "bob-e2e-key"
    running = start_stack(
        tmp_path, port=free_port(), api_key=API_KEY, extra_env={"RESEARCHER_KEYS": f"alice={alice},bob={bob}"}
    )
    try:
        for key in (alice, bob, API_KEY):
            assert running.request("GET", PARTICIPANTS, key=key).status == 200, key
        assert running.request("GET", PARTICIPANTS, key="local-dev-key").status == 403
        assert running.request("GET", PARTICIPANTS, key=alice + bob).status == 403

        ids = api_key_ids(running)
        assert sorted(ids) == ["alice", "bob", "local-researcher"]

        # The real enrollment function resolves each key's id to its name, as on AWS, for the audit trail.
        enrolled = running.request("POST", PARTICIPANTS, {"phone_number": "+1 206 555 0190"}, key=alice)
        assert enrolled.status == 201, enrolled.body
        path = f"{PARTICIPANTS}/{enrolled.json()['id']}"
        assert running.request("PUT", path, {"status": "paused"}, key=bob).status == 200
        audit = running.request("GET", "/conversation/audit?limit=100", key=bob)
        assert audit.status == 200, audit.body
        who = [(entry["researcher"], entry["key_id"]) for entry in audit.json()["items"]]
        assert who == [("alice", ids["alice"]), ("bob", ids["bob"])]
        output = running.output() + running.errors()
        assert "alice, bob  (keys from RESEARCHER_KEYS)" in output
        for key in (alice, bob, API_KEY):
            assert key not in output
    finally:
        assert running.stop() == 0, running.errors()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_signal_ends_the_stack_cleanly_and_promptly(tmp_path: Path, sig: signal.Signals) -> None:
    running = start_stack(tmp_path, port=free_port(), api_key=None)
    assert "local-dev-key" in running.output()  # the printed local default

    started = time.monotonic()
    code = running.stop(sig)

    assert code == 0, running.errors()
    assert time.monotonic() - started < 5
    assert "Traceback" not in running.errors()
    assert "Local stack stopped" in running.output()
