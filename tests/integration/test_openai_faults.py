"""Every way an OpenAI-compatible server can fail, over HTTP: each is LanguageModelUnavailable with its kind and
the number of requests made, and a whole engine turn still answers with the offline coach."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest

from coach.adapters.openai_llm import OpenAILanguageModel
from coach.bots.turn import TurnEvent
from coach.domain.chat import ChatMessage, LanguageModelUnavailable, ModelReply, TokenUsage, ToolSpec
from tests.support.openai_server import (
    Hang,
    Raw,
    ScriptedServer,
    closed_port_url,
    completion,
    error,
    scripted_server,
    with_message,
)
from tests.unit.bots.conversation import Conversation

HELLO = [ChatMessage(role="user", content="hello")]
OFFLINE_REPLY = ["Why does this matter to you right now?"]  # the offline coach's next intake question


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    with scripted_server() as scripted:
        yield scripted


@dataclass
class FakeTime:
    """A monotonic clock that moves only when the adapter sleeps; records the pauses."""

    now: float = 1000.0
    pauses: list[float] = field(default_factory=list)

    def sleep(self, seconds: float) -> None:
        self.pauses.append(seconds)
        self.now += seconds

    def monotonic(self) -> float:
        return self.now


@dataclass
class WithTimeLeft:
    """The adapter as the engine will call it once the port takes `time_left`: with the seconds left."""

    model: OpenAILanguageModel
    seconds: float

    def complete(
        self, messages: Sequence[ChatMessage], tools: Sequence[ToolSpec], *, time_left: float | None = None
    ) -> ModelReply:
        return self.model.complete(messages, tools, time_left=self.seconds)


def adapter(server: ScriptedServer, clock: FakeTime | None = None, **settings: Any) -> OpenAILanguageModel:
    clock = clock or FakeTime()
    return OpenAILanguageModel(server.settings(**settings), sleep=clock.sleep, monotonic=clock.monotonic)


def failure(model: OpenAILanguageModel, time_left: float | None = None) -> LanguageModelUnavailable:
    with pytest.raises(LanguageModelUnavailable) as caught:
        model.complete(HELLO, [], time_left=time_left)
    assert type(caught.value) is LanguageModelUnavailable
    assert str(caught.value).startswith(caught.value.kind)
    return caught.value


def engine_turn(llm: Any) -> Conversation:
    """A participant past consent (always scripted) answers the first intake question: one LLM turn."""
    chat = Conversation(llm=llm)
    chat.event(TurnEvent.ENROLLED)
    chat.text("yes")
    chat.text("physical activity")
    return chat


def fallback_reasons(chat: Conversation) -> list[str]:
    return [e.data["reason"] for e in chat.last.events if e.kind == "llm_fallback"]


# -- answers that arrive but cannot be used: one request each, never retried -------------------------

UNUSABLE_ANSWERS = {
    "html instead of JSON": (
        Raw(b"<html>502 Bad Gateway</html>", headers={"Content-Type": "text/html"}),
        "invalid_json",
    ),
    "cut-off JSON": (Raw(b'{"choices": [{"message": '), "invalid_json"),
    "JSON that is not an object": ([completion("hi")], "malformed"),
    "no choices": (completion(choices=[]), "no_choices"),
    "choices not a list": (completion(choices="x"), "malformed"),
    "message null": (completion(choices=[{"index": 0, "message": None, "finish_reason": "stop"}]), "malformed"),
    "content a number": (with_message(role="assistant", content=42), "malformed"),
    "tool_calls an object": (with_message(role="assistant", content=None, tool_calls={}), "malformed"),
    "a tool call without function": (
        with_message(role="assistant", content=None, tool_calls=[{"id": "call_0", "type": "function"}]),
        "malformed",
    ),
    "a tool call without id": (
        with_message(role="assistant", tool_calls=[{"type": "function", "function": {"name": "x", "arguments": "{}"}}]),
        "malformed",
    ),
    "arguments not a string": (
        with_message(
            role="assistant",
            tool_calls=[{"id": "c", "type": "function", "function": {"name": "x", "arguments": {"a": 1}}}],
        ),
        "malformed",
    ),
    "a refusal": (with_message(role="assistant", content=None, refusal="I can't help with that"), "refusal"),
    "the content filter": (
        completion(
            choices=[{"index": 0, "message": {"role": "assistant", "content": None}, "finish_reason": "content_filter"}]
        ),
        "refusal",
    ),
    "an empty message": (with_message(role="assistant", content=None), "empty"),
    "only blanks": (with_message(role="assistant", content="  \n"), "empty"),
}


@pytest.mark.parametrize(("answer", "kind"), UNUSABLE_ANSWERS.values(), ids=UNUSABLE_ANSWERS.keys())
def test_an_unusable_answer_is_unavailable_with_its_kind_after_one_request(
    server: ScriptedServer, answer: Any, kind: str
) -> None:
    # Given a server that answers with something unusable, and retries allowed
    server.script = [answer]
    clock = FakeTime()

    # When the adapter asks, with or without a deadline
    without_deadline = failure(adapter(server, clock, openai_max_retries=2))
    with_deadline = failure(adapter(server, clock, openai_max_retries=2), time_left=10)

    # Then the kind says what was wrong, and the same answer was not asked for again
    assert (without_deadline.kind, without_deadline.calls) == (kind, 1)
    assert (with_deadline.kind, with_deadline.calls) == (kind, 1)
    assert len(server.requests) == 2
    assert clock.pauses == []


E2E_ANSWERS = {k: UNUSABLE_ANSWERS[k] for k in ("cut-off JSON", "a refusal", "content a number", "an empty message")}


@pytest.mark.parametrize(("answer", "kind"), E2E_ANSWERS.values(), ids=E2E_ANSWERS.keys())
def test_an_unusable_answer_gets_the_offline_coach_in_a_whole_turn(
    server: ScriptedServer, answer: Any, kind: str
) -> None:
    server.script = [answer]

    chat = engine_turn(adapter(server))

    assert chat.last.replies == OFFLINE_REPLY
    assert chat.last.coach == "offline"
    [reason] = fallback_reasons(chat)
    assert reason.startswith(f"{kind}: ")


# -- failures worth a retry ------------------------------------------------------------------------


def test_a_500_then_a_200_is_an_answer_after_one_retry(server: ScriptedServer) -> None:
    server.script = [error(500), completion("Hi there!")]
    clock = FakeTime()

    reply = adapter(server, clock, openai_max_retries=2).complete(HELLO, [])

    assert reply.content == "Hi there!"
    assert reply.calls == 2
    assert clock.pauses == [0.2]
    assert len(server.requests) == 2


def test_500_forever_is_a_server_error_after_every_retry(server: ScriptedServer) -> None:
    server.script = [error(500)]
    clock = FakeTime()

    exc = failure(adapter(server, clock, openai_max_retries=2))

    assert (exc.kind, exc.calls) == ("server_error", 3)
    assert "(3 calls)" in str(exc)
    assert clock.pauses == [0.2, 0.4]
    assert len(server.requests) == 3  # the SDK made no retries of its own


def test_retries_stop_when_less_than_a_useful_second_would_be_left(server: ScriptedServer) -> None:
    # Given 1.5 s: after 0.2 s of backoff 1.3 s are left (a retry); after 0.4 s more, 0.9 s (none)
    server.script = [error(503)]
    clock = FakeTime()

    exc = failure(adapter(server, clock, openai_max_retries=5), time_left=1.5)

    assert (exc.kind, exc.calls) == ("server_error", 2)
    assert clock.pauses == [0.2]


def test_a_429_waits_as_long_as_retry_after_says(server: ScriptedServer) -> None:
    server.script = [error(429, {"Retry-After": "1"}), completion("Hi there!")]
    clock = FakeTime()

    reply = adapter(server, clock, openai_max_retries=2).complete(HELLO, [], time_left=10)

    assert (reply.content, reply.calls) == ("Hi there!", 2)
    assert clock.pauses == [1.0]


def test_a_429_forever_is_rate_limited(server: ScriptedServer) -> None:
    server.script = [error(429, {"retry-after-ms": "1500"})]
    clock = FakeTime()

    exc = failure(adapter(server, clock, openai_max_retries=2))

    assert (exc.kind, exc.calls) == ("rate_limited", 3)
    assert clock.pauses == [1.5, 1.5]


def test_a_429_asking_for_longer_than_is_left_is_not_retried(server: ScriptedServer) -> None:
    server.script = [error(429, {"Retry-After": "30"}), completion("too late")]
    clock = FakeTime()

    exc = failure(adapter(server, clock, openai_max_retries=2), time_left=5)

    assert (exc.kind, exc.calls) == ("rate_limited", 1)
    assert clock.pauses == []
    assert len(server.requests) == 1


@pytest.mark.parametrize("status", [400, 401, 404, 422])
def test_other_4xx_are_client_errors_and_not_retried(server: ScriptedServer, status: int) -> None:
    server.script = [error(status), completion("never asked for")]
    clock = FakeTime()

    exc = failure(adapter(server, clock, openai_max_retries=2))

    assert (exc.kind, exc.calls) == ("client_error", 1)
    assert len(server.requests) == 1


def test_a_refused_connection_is_a_connection_error_after_the_retries() -> None:
    clock = FakeTime()
    settings = ScriptedServer(url=closed_port_url()).settings(openai_max_retries=1)

    with pytest.raises(LanguageModelUnavailable) as caught:
        OpenAILanguageModel(settings, sleep=clock.sleep, monotonic=clock.monotonic).complete(HELLO, [])

    assert (caught.value.kind, caught.value.calls) == ("connection", 2)
    assert clock.pauses == [0.2]


# -- the caller's deadline -------------------------------------------------------------------------


def test_a_hung_server_is_given_up_on_when_the_time_left_runs_out(server: ScriptedServer) -> None:
    # Given a server that hangs 25 s, a 20 s timeout and two retries: 60 s without a deadline
    server.script = [Hang(25)]
    pauses: list[float] = []
    model = OpenAILanguageModel(server.settings(openai_timeout_seconds=20, openai_max_retries=2), sleep=pauses.append)

    # When the caller can wait 2 s
    started = time.monotonic()
    exc = failure(model, time_left=2)
    elapsed = time.monotonic() - started

    # Then the adapter gives up after about 2 s, without a retry it has no time for
    assert elapsed < 4
    assert exc.kind in {"timeout", "out_of_time"}
    assert exc.calls == len(server.requests) == 1
    assert pauses == []


def test_a_hung_server_gets_the_offline_coach_in_a_whole_turn(server: ScriptedServer) -> None:
    server.script = [Hang(25)]
    model = OpenAILanguageModel(server.settings(openai_timeout_seconds=20, openai_max_retries=2))

    started = time.monotonic()
    chat = engine_turn(WithTimeLeft(model, seconds=2))

    assert time.monotonic() - started < 4
    assert chat.last.replies == OFFLINE_REPLY
    assert chat.last.coach == "offline"
    [reason] = fallback_reasons(chat)
    assert reason.startswith("timeout: APITimeoutError")


@pytest.mark.parametrize("time_left", [0, -3, 0.5])
def test_no_time_left_makes_no_request(server: ScriptedServer, time_left: float) -> None:
    server.script = [completion("never asked for")]

    exc = failure(adapter(server), time_left=time_left)

    assert (exc.kind, exc.calls) == ("out_of_time", 0)
    assert server.requests == []


# -- anything else -----------------------------------------------------------------------------------


def test_an_exception_inside_the_client_is_unexpected(server: ScriptedServer, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given an SDK whose create() has a bug
    server.script = [completion("never asked for")]
    model = adapter(server, openai_max_retries=2)

    def broken_create(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("a bug in the SDK's parsing")

    monkeypatch.setattr(type(model.client.chat.completions), "create", broken_create)

    exc = failure(model)

    # Then it is one (unretried) unexpected failure, and the turn still gets the offline coach
    assert (exc.kind, exc.calls) == ("unexpected", 1)
    assert "RuntimeError: a bug in the SDK's parsing" in str(exc)
    chat = engine_turn(model)
    assert chat.last.replies == OFFLINE_REPLY
    assert fallback_reasons(chat)[0].startswith("unexpected: RuntimeError")


def test_a_failure_raised_without_a_kind_reads_as_unavailable() -> None:
    exc = LanguageModelUnavailable("503")

    assert (str(exc), exc.kind, exc.calls) == ("503", "unavailable", 0)


# -- token usage -------------------------------------------------------------------------------------


def test_the_usage_and_the_serving_model_are_read(server: ScriptedServer) -> None:
    server.script = [completion("Hi!", usage={"prompt_tokens": 120, "completion_tokens": 7}, model="gpt-x-2026")]

    reply = adapter(server).complete(HELLO, [])

    assert reply.usage == TokenUsage(prompt_tokens=120, completion_tokens=7, model="gpt-x-2026")
    assert reply.usage.total == 127
    assert reply.calls == 1


def test_without_a_model_name_the_usage_names_the_configured_model(server: ScriptedServer) -> None:
    body = completion("Hi!", usage={"prompt_tokens": 3, "completion_tokens": 4})
    del body["model"]
    server.script = [body]

    reply = adapter(server).complete(HELLO, [])

    assert reply.usage == TokenUsage(prompt_tokens=3, completion_tokens=4, model="scripted-model")


@pytest.mark.parametrize(
    "usage",
    [
        None,
        "lots",
        {"prompt_tokens": "3", "completion_tokens": 4},
        {"prompt_tokens": 3},
        {"prompt_tokens": -1, "completion_tokens": 1},
    ],
)
def test_a_missing_or_malformed_usage_is_none_not_an_error(server: ScriptedServer, usage: Any) -> None:
    server.script = [completion("Hi!", usage=usage)]

    reply = adapter(server).complete(HELLO, [])

    assert (reply.content, reply.usage) == ("Hi!", None)


def test_a_body_without_usage_at_all_is_none(server: ScriptedServer) -> None:
    body = completion("Hi!")
    del body["usage"]
    server.script = [body]

    assert adapter(server).complete(HELLO, []).usage is None


def test_tool_calls_still_arrive_as_written(server: ScriptedServer) -> None:
    server.script = [completion(None, ("scheduler", '{"action": "create"}'), ("transition_state", ""))]

    reply = adapter(server).complete(HELLO, [])

    assert [(c.id, c.name, c.arguments) for c in reply.tool_calls] == [
        ("call_0", "scheduler", '{"action": "create"}'),
        ("call_1", "transition_state", ""),
    ]
    assert server.requests[0]["messages"] == [{"role": "user", "content": "hello"}]
