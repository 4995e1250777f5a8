"""The LanguageModel port on the official `openai` client (any OpenAI-compatible server).

The only module that imports `openai`, and only when the first call needs it: the import costs ~0.85 s
of cold start, which the webhook and enrollment functions must never pay.

Every failure becomes LanguageModelUnavailable with a `kind`, so the offline coach answers and the fallbacks
can be counted. The adapter makes its own retries (the SDK's are off) so that it knows how many requests
it made and can stop at the caller's deadline. It reads the raw body and checks it field by field rather
than trusting the SDK's lenient parsing, which hands back whatever shape the server sent.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from coach.domain.chat import ChatMessage, LanguageModelUnavailable, ModelReply, TokenUsage, ToolCall, ToolSpec
from coach.settings import CoachSettings

MIN_USEFUL_SECONDS = 1.0  # with less time left, no request is started: it could not finish usefully
BACKOFF_SECONDS = 0.2  # the pause before retry n (from 0) is 0.2 * 2**n, unless the server says otherwise
MAX_RETRY_AFTER_SECONDS = 60.0  # a server asking for a longer pause gets no retry (as the SDK does)
RETRYABLE = frozenset({"timeout", "connection", "rate_limited", "server_error"})


class OpenAILanguageModel:
    """Chat completions with tools. Every failure becomes LanguageModelUnavailable, so the offline coach answers."""

    def __init__(
        self,
        settings: CoachSettings,
        client: Any | None = None,
        *,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._settings = settings
        self._client = client
        self._single_try_client: Any | None = None
        self._sleep = sleep
        self._monotonic = monotonic

    @property
    def client(self) -> Any:
        if self._client is None:
            from openai import OpenAI  # noqa: TID251  # lazily: see the module docstring

            self._client = OpenAI(
                # A local OpenAI-compatible server may need no key, but the client insists on one.
                api_key=self._settings.openai_api_key or "not-needed",
                base_url=self._settings.openai_base_url,
                timeout=self._settings.openai_timeout_seconds,
                max_retries=self._settings.openai_max_retries,
            )
        return self._client

    @property
    def _single_try(self) -> Any:
        """The client with its own retries off (it shares the connection pool): the retries are ours."""
        if self._single_try_client is None:
            self._single_try_client = self.client.with_options(max_retries=0)
        return self._single_try_client

    def complete(
        self, messages: Sequence[ChatMessage], tools: Sequence[ToolSpec], *, time_left: float | None = None
    ) -> ModelReply:
        """One answer. Tries 1 + OPENAI_MAX_RETRIES times, retrying only timeouts, connection errors, 429
        and 5xx. With `time_left` (seconds the caller can still wait) it never waits longer in all: each
        request's timeout is cut to what is left, and no request starts with less than MIN_USEFUL_SECONDS
        left. Raises LanguageModelUnavailable and nothing else."""
        deadline = None if time_left is None else self._monotonic() + time_left
        if time_left is not None and time_left < MIN_USEFUL_SECONDS:
            reason = f"out_of_time: {max(time_left, 0.0):.2f} s left, too little for a request"
            raise LanguageModelUnavailable(reason, kind="out_of_time", calls=0)
        request = _request(self._settings.openai_model, messages, tools)
        calls = 0
        while True:
            calls += 1
            try:
                reply = self._attempt(request, self._request_timeout(deadline))
            except _Failure as failure:
                pause = self._retry_pause(failure, retries_done=calls - 1, deadline=deadline)
                if pause is None:
                    reason = f"{failure}{f' ({calls} calls)' if calls > 1 else ''}"
                    raise LanguageModelUnavailable(reason, kind=failure.kind, calls=calls) from failure.__cause__
                self._sleep(pause)
            else:
                return reply.model_copy(update={"calls": calls})

    def _request_timeout(self, deadline: float | None) -> float | None:
        """This request's timeout: the client's own (None) without a deadline, else cut to what is left."""
        if deadline is None:
            return None
        return max(min(self._settings.openai_timeout_seconds, deadline - self._monotonic()), 0.0)

    def _retry_pause(self, failure: _Failure, *, retries_done: int, deadline: float | None) -> float | None:
        """Seconds to wait before trying again, or None to give up: not worth retrying, no retries left, a
        server asking for too long a pause, or too little time left after the pause."""
        if failure.kind not in RETRYABLE or retries_done >= self._settings.openai_max_retries:
            return None
        pause: float = BACKOFF_SECONDS * 2.0**retries_done
        if failure.retry_after is not None:
            if failure.retry_after > MAX_RETRY_AFTER_SECONDS:
                return None
            pause = failure.retry_after
        if deadline is not None and deadline - self._monotonic() - pause < MIN_USEFUL_SECONDS:
            return None
        return pause

    def _attempt(self, request: dict[str, Any], timeout: float | None) -> ModelReply:
        """One HTTP request and its answer; every failure is a _Failure."""
        try:
            return _reply(self._post(request, timeout), self._settings.openai_model)
        except _Failure:
            raise
        except Exception as exc:  # a bug in the SDK or here: still only a fallback, never a failed turn
            raise _Failure("unexpected", _describe(exc)) from exc

    def _post(self, request: dict[str, Any], timeout: float | None) -> Any:
        """The decoded JSON body of one request without the SDK's retries."""
        import openai  # noqa: TID251  # already loaded by `client`; needed for its error types

        options = {} if timeout is None else {"timeout": timeout}
        create = self._single_try.chat.completions.with_raw_response.create
        try:
            raw = create(**request, **options)
        except openai.APITimeoutError as exc:  # before APIConnectionError: it is one
            raise _Failure("timeout", _describe(exc)) from exc
        except openai.APIConnectionError as exc:
            raise _Failure("connection", _describe(exc)) from exc
        except openai.APIStatusError as exc:
            status = exc.status_code
            kind = "rate_limited" if status == 429 else "server_error" if status >= 500 else "client_error"
            raise _Failure(kind, _describe(exc), retry_after=_retry_after(exc.response.headers)) from exc
        body = raw.content
        try:
            return json.loads(body)
        except ValueError as exc:  # JSONDecodeError, or bytes that are not UTF-8/16/32
            raise _Failure("invalid_json", f"the body is not JSON: {body[:80]!r}") from exc


class _Failure(Exception):
    """One try's failure, classified; `complete` decides whether to try again."""

    def __init__(self, kind: str, detail: str, *, retry_after: float | None = None) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        self.retry_after = retry_after


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(exc)[:150]}"


def _retry_after(headers: Mapping[str, str]) -> float | None:
    """The pause the server asked for, in seconds (retry-after-ms first, as the SDK reads it), if any."""
    for header, divisor in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = headers.get(header)
        if value is None:
            continue
        try:
            seconds = float(value) / divisor
        except ValueError:  # an HTTP date: rare enough to back off as usual
            continue
        return max(seconds, 0.0) if math.isfinite(seconds) else MAX_RETRY_AFTER_SECONDS + 1
    return None


def _request(model: str, messages: Sequence[ChatMessage], tools: Sequence[ToolSpec]) -> dict[str, Any]:
    request: dict[str, Any] = {"model": model, "messages": [_wire(m) for m in messages]}
    if tools:
        request["tools"] = [
            {
                "type": "function",
                "function": {"name": t.name, "description": t.description, "parameters": t.parameters},
            }
            for t in tools
        ]
    return request


def _wire(message: ChatMessage) -> dict[str, Any]:
    wire: dict[str, Any] = {"role": message.role, "content": message.content}
    if message.tool_calls:
        wire["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in message.tool_calls
        ]
    if message.tool_call_id is not None:
        wire["tool_call_id"] = message.tool_call_id
    return wire


def _reply(body: Any, asked_model: str) -> ModelReply:
    """The first choice of a chat.completion body, checked field by field."""
    if not isinstance(body, dict):
        raise _Failure("malformed", f"the body is {_shape(body)}, not an object")
    choices = body.get("choices")
    if not isinstance(choices, list):
        raise _Failure("malformed", f"choices is {_shape(choices)}, not a list")
    if not choices:
        raise _Failure("no_choices", "the response has no choices")
    choice = choices[0]
    message = choice.get("message") if isinstance(choice, dict) else None
    if not isinstance(message, dict):
        raise _Failure("malformed", f"choices[0].message is {_shape(message)}, not an object")
    content = _optional_str(message, "content")
    refusal = _optional_str(message, "refusal")
    raw_calls = message.get("tool_calls")
    if raw_calls is not None and not isinstance(raw_calls, list):
        raise _Failure("malformed", f"tool_calls is {_shape(raw_calls)}, not a list")
    calls = tuple(_tool_call(i, c) for i, c in enumerate(raw_calls or ()))
    if refusal and refusal.strip():
        raise _Failure("refusal", f"the model refused: {refusal[:100]}")
    if choice.get("finish_reason") == "content_filter":
        raise _Failure("refusal", "the content filter stopped the answer")
    if not calls and not (content or "").strip():
        raise _Failure("empty", "the model sent neither text nor tool calls")
    return ModelReply(content=content, tool_calls=calls, usage=_usage(body, asked_model))


def _optional_str(message: dict[str, Any], key: str) -> str | None:
    value = message.get(key)
    if value is not None and not isinstance(value, str):
        raise _Failure("malformed", f"message.{key} is {_shape(value)}, not a string")
    return value


def _tool_call(index: int, call: Any) -> ToolCall:
    where = f"tool_calls[{index}]"
    if not isinstance(call, dict):
        raise _Failure("malformed", f"{where} is {_shape(call)}, not an object")
    call_id, function = call.get("id"), call.get("function")
    if not isinstance(call_id, str) or not call_id:
        raise _Failure("malformed", f"{where} has no id")
    if not isinstance(function, dict):
        raise _Failure("malformed", f"{where} has no function")
    name, arguments = function.get("name"), function.get("arguments")
    if not isinstance(name, str) or not name:
        raise _Failure("malformed", f"{where} has no function name")
    if arguments is None:  # some servers leave out the arguments of a call that takes none
        arguments = ""
    if not isinstance(arguments, str):
        raise _Failure("malformed", f"{where}.function.arguments is {_shape(arguments)}, not a string")
    return ToolCall(id=call_id, name=name, arguments=arguments)


def _usage(body: dict[str, Any], asked_model: str) -> TokenUsage | None:
    """The tokens the server counted; None when it did not say, or not in the usual shape."""
    usage = body.get("usage")
    if not isinstance(usage, dict):
        return None
    prompt, completion = _count(usage.get("prompt_tokens")), _count(usage.get("completion_tokens"))
    if prompt is None or completion is None:
        return None
    served = body.get("model")
    model = served if isinstance(served, str) and served else asked_model
    return TokenUsage(prompt_tokens=prompt, completion_tokens=completion, model=model)


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _shape(value: Any) -> str:
    """A JSON value's kind, for a reason a person reads."""
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", int: "a number", float: "a number"}
    return "missing or null" if value is None else names.get(type(value), type(value).__name__)


def language_model(settings: CoachSettings) -> OpenAILanguageModel | None:
    """The configured model, or None: no key and no base URL means the offline coach."""
    return OpenAILanguageModel(settings) if settings.llm_configured else None


def secret_api_key(secret_name: str, max_age: float = 300) -> str | None:
    """The key of the Secrets Manager secret {"api_key": ...}, read again after `max_age` seconds; None (the
    offline coach) when the secret is unreadable or has no key, so a deployment without an OpenAI account
    works as it is."""
    from coach.adapters.secrets import SecretUnavailable, container_secrets
    from coach.observability import logger

    try:
        secret = container_secrets().json(secret_name, max_age)
    except SecretUnavailable as exc:
        logger.info("no OpenAI key: the offline coach answers", extra={"secret": secret_name, "reason": exc.reason})
        return None
    api_key = secret.get("api_key") if isinstance(secret, dict) else None
    if not api_key:
        logger.info("no OpenAI key: the offline coach answers", extra={"secret": secret_name, "reason": "no api_key"})
        return None
    return str(api_key)
