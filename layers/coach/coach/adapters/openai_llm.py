"""The LanguageModel port on the official `openai` client (any OpenAI-compatible server).

The only module that imports `openai`, and only when the first call needs it: the import costs ~0.85 s
of cold start, which the webhook and enrollment functions must never pay.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from coach.domain.chat import ChatMessage, LanguageModelUnavailable, ModelReply, ToolCall, ToolSpec
from coach.settings import CoachSettings


class OpenAILanguageModel:
    """Chat completions with tools. Every failure becomes LanguageModelUnavailable, so the offline coach answers."""

    def __init__(self, settings: CoachSettings, client: Any | None = None) -> None:
        self._settings = settings
        self._client = client

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

    def complete(self, messages: Sequence[ChatMessage], tools: Sequence[ToolSpec]) -> ModelReply:
        import openai  # noqa: TID251  # already loaded by `client`; needed for its error types

        request: dict[str, Any] = {"model": self._settings.openai_model, "messages": [_wire(m) for m in messages]}
        if tools:
            request["tools"] = [
                {
                    "type": "function",
                    "function": {"name": t.name, "description": t.description, "parameters": t.parameters},
                }
                for t in tools
            ]
        try:
            response = self.client.chat.completions.create(**request)
        except openai.OpenAIError as exc:  # timeouts, connection errors, 4xx/5xx after the client's retries
            raise LanguageModelUnavailable(f"{type(exc).__name__}: {str(exc)[:200]}") from exc
        return _reply(response)


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


def _reply(response: Any) -> ModelReply:
    """The first choice as a ModelReply; a response without one is unusable."""
    try:
        message = response.choices[0].message
        calls = tuple(
            ToolCall(id=c.id, name=c.function.name, arguments=c.function.arguments or "")
            for c in (message.tool_calls or ())
            if getattr(c, "function", None) is not None
        )
        return ModelReply(content=message.content, tool_calls=calls)
    except (AttributeError, IndexError, TypeError, ValueError) as exc:
        raise LanguageModelUnavailable(f"unusable response: {type(exc).__name__}") from exc


def language_model(settings: CoachSettings) -> OpenAILanguageModel | None:
    """The configured model, or None: no key and no base URL means the offline coach."""
    return OpenAILanguageModel(settings) if settings.llm_configured else None


def language_model_from_secret(settings: CoachSettings, secret_name: str) -> OpenAILanguageModel | None:
    """The model with its key from the Secrets Manager secret {"api_key": ...}; None (the offline coach) when
    the secret is absent or has no key, so a deployment without an OpenAI account works as it is."""
    from aws_lambda_powertools.utilities import parameters

    try:
        secret = parameters.get_secret(secret_name, transform="json", max_age=300)
    except parameters.exceptions.GetParameterError:
        return None
    api_key = secret.get("api_key") if isinstance(secret, dict) else None
    if not api_key:
        return None
    return OpenAILanguageModel(settings.model_copy(update={"openai_api_key": str(api_key)}))
