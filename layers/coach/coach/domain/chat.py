"""The shape of a chat with a language model, independent of any vendor's SDK."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from coach.domain.errors import DomainError


class ToolCall(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    name: str
    arguments: str = Field(description="JSON text as the model wrote it; it may be malformed")


class ChatMessage(BaseModel):
    model_config = ConfigDict(frozen=True)

    role: Literal["system", "user", "assistant", "tool"]
    content: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None  # set on role "tool": which call this answers


class ToolSpec(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    description: str
    parameters: dict[str, Any]  # JSON schema of the arguments


class TokenUsage(BaseModel):
    """What one answer cost, as the server counted it."""

    model_config = ConfigDict(frozen=True)

    prompt_tokens: int = Field(ge=0)
    completion_tokens: int = Field(ge=0)
    model: str  # the model that answered, as the server named it (else the one asked for)

    @property
    def total(self) -> int:
        return self.prompt_tokens + self.completion_tokens


class ModelReply(BaseModel):
    """One answer of the model: text, tool calls, both or (unusably) neither."""

    model_config = ConfigDict(frozen=True)

    content: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    usage: TokenUsage | None = None  # None when the server did not say (or said it in a shape we do not know)
    calls: int = Field(1, ge=1, description="HTTP requests made for this answer, retries included")


class LanguageModelUnavailable(DomainError):
    """The model did not answer usably; the offline coach answers instead.

    `kind` says why, so callers can count fallbacks: timeout, connection, rate_limited, server_error,
    client_error, invalid_json, no_choices, malformed, refusal, empty, out_of_time, unexpected (the adapter's),
    or "unavailable" when the raiser did not say. `calls`: the HTTP requests made for this failure (they may
    have cost tokens), so a cap on calls can count failed ones too. `str(exc)` is a readable reason.
    """

    def __init__(self, reason: str, *, kind: str = "unavailable", calls: int = 0) -> None:
        super().__init__(reason)
        self.kind = kind
        self.calls = calls
