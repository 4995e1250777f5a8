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


class ModelReply(BaseModel):
    """One answer of the model: text, tool calls, both or (unusably) neither."""

    model_config = ConfigDict(frozen=True)

    content: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()


class LanguageModelUnavailable(DomainError):
    """The model did not answer usably (timeout, 5xx, 429 after retries, a malformed response)."""
