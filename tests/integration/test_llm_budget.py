"""What the LLM may cost and how long it may take (issue 9): every call counts against the participant's day,
failed ones included; tokens are read and recorded; the participant's daily tokens and the study's daily
budget switch to the offline coach; the invocation's deadline bounds every call. Through the real `openai`
client against a scripted OpenAI-compatible server, with the conversation service in memory."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from coach.adapters.openai_llm import OpenAILanguageModel
from coach.domain.participant import Participant
from tests.support.conversation import Harness, harness
from tests.support.openai_server import Hang, ScriptedServer, completion, error, scripted_server

INTAKE = ["yes", "physical activity", "to have more energy", "7:30am", "after my morning coffee", "no"]


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    with scripted_server() as scripted:
        yield scripted


def coached(h: Harness) -> Participant:
    participant = h.enroll()
    for text in INTAKE:
        h.text(participant, text)
    return participant


def events(h: Harness, participant: Participant, kind: str) -> list[dict[str, Any]]:
    found = h.participants.list_events(participant.id, limit=1000, next_token=None).items
    return [e.data for e in found if e.kind == kind]


def test_a_model_that_loops_tool_calls_spends_no_more_calls_than_the_daily_cap(server: ScriptedServer) -> None:
    # Given a model that answers every request with another tool call, and a cap of 2 calls a day
    server.script = [completion(None, ("scheduler", '{"action": "list"}'))]
    model = OpenAILanguageModel(server.settings())
    with harness("memory", language_model=model, daily_llm_calls=2) as h:  # type: ignore[arg-type]
        participant = coached(h)
        requests_after_intake = len(server.requests)

        # When the participant texts five times
        answers = [h.text(participant, "did it!") for _ in range(5)]

        # Then the model was asked twice in all (the loop stopped at the cap), and every text was answered
        assert len(server.requests) - requests_after_intake <= 2
        assert all(answers)
        flow = h.participants.get_flow_state(participant.id)
        assert flow.llm_calls_that_day == 2
        assert [e["kind"] for e in events(h, participant, "llm_fallback")][:1] == ["daily_call_cap"]


def test_failed_calls_count_against_the_cap_too(server: ScriptedServer) -> None:
    server.script = [error(500)]
    model = OpenAILanguageModel(server.settings(openai_max_retries=0))
    with harness("memory", language_model=model, daily_llm_calls=3) as h:  # type: ignore[arg-type]
        participant = h.enroll()
        h.text(participant, "yes")  # consent is read by rules: no LLM yet

        for _ in range(5):
            assert h.text(participant, "I'd like to move more")  # the offline coach answers each

        assert len(server.requests) == 3  # three failed calls, then the cap: no more asking
        assert h.participants.get_flow_state(participant.id).llm_calls_that_day == 3
        assert {e["kind"] for e in events(h, participant, "llm_fallback")} == {"server_error"}
        assert len(events(h, participant, "llm_daily_cap")) >= 1


def test_each_turns_tokens_and_model_are_on_record_and_the_daily_token_cap_holds(server: ScriptedServer) -> None:
    usage = {"prompt_tokens": 80, "completion_tokens": 20, "total_tokens": 100}
    server.script = [completion("Great job!", usage=usage)]
    model = OpenAILanguageModel(server.settings())
    with harness("memory", language_model=model, daily_llm_tokens=150) as h:  # type: ignore[arg-type]
        participant = h.enroll()
        h.text(participant, "yes")  # consent is read by rules: no LLM yet
        before = len(server.requests)

        for _ in range(3):
            h.text(participant, "I'd like to move more")

        # 100 tokens, then 200 (over the cap of 150 a day only after the second call): two calls, then offline
        assert len(server.requests) - before == 2
        used = events(h, participant, "llm_usage")
        assert [(u["calls"], u["prompt_tokens"], u["completion_tokens"], u["models"]) for u in used] == [
            (1, 80, 20, ["scripted"]),
            (1, 80, 20, ["scripted"]),
        ]
        assert h.participants.get_flow_state(participant.id).llm_tokens_that_day == 200
        assert h.service.coach.budget is not None
        assert sum(h.service.coach.budget.days.values()) == 200  # type: ignore[attr-defined]  # the study's count


def test_a_spent_study_budget_switches_everyone_to_the_offline_coach(server: ScriptedServer) -> None:
    server.script = [completion("From the LLM")]
    model = OpenAILanguageModel(server.settings())
    with harness("memory", language_model=model, study_daily_llm_tokens=1000) as h:  # type: ignore[arg-type]
        participant = h.enroll()
        h.text(participant, "yes")
        budget = h.service.coach.budget
        assert budget is not None
        budget.add(h.clock.now().date().isoformat(), 1000)

        reply = h.text(participant, "I'd like to move more")

        assert reply
        assert reply != ["From the LLM"]
        assert server.requests == []
        assert [e["reason"] for e in events(h, participant, "llm_not_used")] == ["study_daily_token_budget"]


def test_a_hung_llm_gets_no_more_than_the_invocations_time_and_the_offline_coach_answers(
    server: ScriptedServer,
) -> None:
    # Given an LLM that hangs for 25 s, a client allowed 20 s and two retries, and an invocation with 3 s left
    server.script = [Hang(25)]
    model = OpenAILanguageModel(server.settings(openai_timeout_seconds=20, openai_max_retries=2))
    with harness("memory", language_model=model) as h:  # type: ignore[arg-type]
        participant = h.enroll()
        h.text(participant, "yes")
        deadline = time.monotonic() + 3

        work = h.receive(participant, "I'd like to move more")
        started = time.monotonic()
        h.service.handle(work, time_left=lambda: deadline - time.monotonic())
        took = time.monotonic() - started

        # Then the turn ended well within the invocation (not 60 s of client timeouts), answered offline
        assert took < 10
        assert h.sms.sent[-1].body
        assert events(h, participant, "llm_fallback")[-1]["kind"] in ("timeout", "out_of_time")


def test_no_call_starts_without_the_time_to_finish_it(server: ScriptedServer) -> None:
    server.script = [completion("From the LLM")]
    model = OpenAILanguageModel(server.settings())
    with harness("memory", language_model=model) as h:  # type: ignore[arg-type]
        participant = h.enroll()
        h.text(participant, "yes")

        h.service.handle(h.receive(participant, "I'd like to move more"), time_left=lambda: 1.0)

        assert server.requests == []
        assert events(h, participant, "llm_fallback")[-1]["kind"] == "out_of_time"
        assert h.sms.sent[-1].body != "From the LLM"
