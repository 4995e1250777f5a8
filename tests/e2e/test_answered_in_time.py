"""Every text is answered within its deadline, whatever the LLM, Twilio or the text itself do (issue 9), on
`python -m infra.local` with signed webhooks and the fake Twilio:

  - a scripted OpenAI-compatible server answering bad JSON, hanging for 25 s, answering 500s, or calling tools
    forever: each participant gets exactly one answer (the offline coach's), inside the function's timeout;
  - a slow LLM for one participant delays no other participant;
  - the lost-reply sequence: after an identical earlier reply, a send answered with a 500 is retried and the
    second text gets its reply, exactly once; the callbacks that name each item mark both delivered;
  - the dead-letter queue's redrive command works against the running local stack.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from infra.redrive import main as redrive
from infra.sms import Target, inbound_form, replies_to, send, signed_webhook
from tests.e2e.local_stack import RunningStack, created, drain, free_port, research_events, start_stack
from tests.support.openai_server import Hang, Raw, ScriptedServer, completion, error, scripted_server

pytestmark = pytest.mark.e2e

FUNCTION_TIMEOUT = 60  # the conversation function's Timeout (template.yaml, Mappings.Timing)
CASES = {
    "+12065550171": ("bad json", Raw(b"this is not JSON {")),
    "+12065550172": ("a hang", Hang(25)),
    "+12065550173": ("server errors", error(500)),
    "+12065550174": ("endless tools", completion(None, ("scheduler", '{"action": "list"}'))),
}


@pytest.fixture(scope="module")
def llm() -> Iterator[ScriptedServer]:
    with scripted_server() as server:
        yield server


def answer_by_case(server: ScriptedServer) -> None:
    """Each participant's case picks the server's answer (the case's words are in the text they send)."""

    def next_answer(body: dict[str, Any]) -> Any:
        server.requests.append(body)
        said = " ".join(str(m.get("content") or "") for m in body["messages"] if m["role"] == "user")
        for _, (case, answer) in CASES.items():
            if case in said:
                return answer
        if "slowly" in said:
            time.sleep(2.5)  # under the client's 3 s timeout: slow, not failed
        return completion("Hello from the LLM!")

    server.next_answer = next_answer  # type: ignore[method-assign]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, llm: ScriptedServer) -> Iterator[RunningStack]:
    answer_by_case(llm)
    env = {
        "OPENAI_BASE_URL": llm.url,
        "OPENAI_API_KEY": "sk-local-test",
        "OPENAI_TIMEOUT_SECONDS": "3",  # the hang outlasts every call: each times out
        "OPENAI_MAX_RETRIES": "1",
    }
    running = start_stack(tmp_path_factory.mktemp("llm-faults"), port=free_port(), api_key="e2e-llm", extra_env=env)
    yield running
    running.stop()


def text(stack: RunningStack, phone: str, body: str) -> None:
    target = Target.from_environ({"PORT": str(stack.port)})
    status, _ = send(signed_webhook(target, inbound_form(target, phone, body)))
    assert status == 200


def consented(stack: RunningStack, phone: str) -> str:
    enrolled = stack.request("POST", "/conversation/participants", {"phone_number": phone})
    assert enrolled.status == 201, enrolled.body
    drain(stack)
    text(stack, phone, "yes")  # consent is read by rules: no LLM
    drain(stack)
    participant_id: str = enrolled.json()["id"]
    return participant_id


def messages(stack: RunningStack, phone: str) -> list[dict[str, Any]]:
    return sorted(replies_to(Target.from_environ({"PORT": str(stack.port)}), phone), key=created)


def test_whatever_the_llm_does_each_text_gets_one_answer_inside_the_functions_timeout(stack: RunningStack) -> None:
    people = {phone: consented(stack, phone) for phone in CASES}
    before = {phone: len(messages(stack, phone)) for phone in CASES}

    started = time.monotonic()
    for phone, (case, _) in CASES.items():
        text(stack, phone, f"I'd like to walk more ({case})")
    # The drain itself waits up to the function's timeout; the HTTP client waits a little longer (the hanging LLM
    # alone takes three 3 s attempts: the default 10 s of stack.request would race it).
    body = {"timeout_seconds": FUNCTION_TIMEOUT}
    reply = stack.request("POST", "/_local/pump/drain", body, key=None, timeout=FUNCTION_TIMEOUT + 10)
    took = time.monotonic() - started

    assert reply.status == 200, reply.body
    assert took < FUNCTION_TIMEOUT
    for phone, participant_id in people.items():
        answers = messages(stack, phone)[before[phone] :]
        assert len(answers) == 1, (CASES[phone][0], answers)
        kinds = [e["data"]["kind"] for e in research_events(stack, participant_id) if e["kind"] == "llm_fallback"]
        assert kinds, CASES[phone][0]
    assert "Task timed out" not in stack.errors()


def test_one_participants_slow_llm_delays_no_one_else(stack: RunningStack) -> None:
    slow, quick = "+12065550175", "+12065550176"
    consented(stack, slow)
    consented(stack, quick)
    before = len(messages(stack, quick))

    text(stack, slow, "tell me slowly about habits")  # the LLM takes 2.5 s for this one
    time.sleep(0.2)  # the slow turn is under way
    sent_at = time.monotonic()
    text(stack, quick, "I'd like to walk more")
    while len(messages(stack, quick)) == before and time.monotonic() - sent_at < 10:
        time.sleep(0.05)
    waited = time.monotonic() - sent_at

    assert len(messages(stack, quick)) == before + 1
    assert waited < 2  # its own LLM call and a turn: not behind the other participant's 2.5 s
    drain(stack)


@pytest.fixture(scope="module")
def offline_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    running = start_stack(tmp_path_factory.mktemp("lost-reply"), port=free_port(), api_key="e2e-lost")
    yield running
    running.stop()


def test_a_reply_whose_send_failed_is_not_hidden_by_an_identical_earlier_one(offline_stack: RunningStack) -> None:
    stack, phone = offline_stack, "+12065550177"
    participant_id = consented(stack, phone)
    for body in ["physical activity", "to have more energy", "7:30am", "after my morning coffee", "no"]:
        text(stack, phone, body)
        drain(stack)
    seen = {m["sid"] for m in messages(stack, phone)}
    text(stack, phone, "hello coach")
    drain(stack)
    [first] = [m for m in messages(stack, phone) if m["sid"] not in seen]
    seen.add(first["sid"])

    fault = stack.request("POST", "/_local/twilio/faults", {"status": 500, "count": 1}, key=None)
    assert fault.status == 200, fault.body
    text(stack, phone, "hello coach, me again")
    reply = stack.request("POST", "/_local/pump/drain", {"timeout_seconds": 60}, key=None, timeout=70)
    assert reply.status == 200, reply.body

    again = [m for m in messages(stack, phone) if m["sid"] not in seen]
    assert [m["body"] for m in again] == [first["body"]]  # its own reply, once, although the words are the same
    transcript = stack.request("GET", f"/conversation/participants/{participant_id}/messages?limit=100").json()
    sids = {m["twilio_sid"]: m["status"] for m in transcript["items"] if m["direction"] == "outbound"}
    deadline = time.monotonic() + 10
    while {sids.get(first["sid"]), sids.get(again[0]["sid"])} != {"delivered"} and time.monotonic() < deadline:
        time.sleep(0.1)  # the fake Twilio's callbacks, which name each item, arrive just after the sends
        transcript = stack.request("GET", f"/conversation/participants/{participant_id}/messages?limit=100").json()
        sids = {m["twilio_sid"]: m["status"] for m in transcript["items"] if m["direction"] == "outbound"}
    assert sids[first["sid"]] == sids[again[0]["sid"]] == "delivered"


def test_the_redrive_command_reaches_the_running_local_stack(offline_stack: RunningStack) -> None:
    printed: list[str] = []

    assert redrive(["--local", "--port", str(offline_stack.port), "--dry-run"], printed.append) == 0

    assert printed
    assert printed[0].startswith("0 message(s) wait in ")
    inventory = json.loads(offline_stack.request("GET", "/_local/resources", key=None).body)
    assert set(inventory["queues"]) >= {"InboundQueue", "InboundDeadLetterQueue", "NudgeDeadLetterQueue"}
