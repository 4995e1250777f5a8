"""A scripted OpenAI-compatible server on 127.0.0.1: answers /v1/chat/completions from a script.

A script entry is what one request gets: a JSON payload (200), a `(status, payload)` tuple, a `Raw`
answer (any bytes and headers) or a `Hang` (no answer for that long). The last entry repeats.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from coach.settings import CoachSettings


@dataclass(frozen=True)
class Raw:
    """An answer exactly as given: status, headers and body bytes."""

    body: bytes
    status: int = 200
    headers: Mapping[str, str] = field(default_factory=lambda: {"Content-Type": "application/json"})


@dataclass(frozen=True)
class Hang:
    """No answer for `seconds` (or until the server stops), then the connection closes."""

    seconds: float = 10.0


HANG = Hang()


def completion(content: str | None = None, *calls: tuple[str, str], **changes: Any) -> dict[str, Any]:
    """A chat.completion body: text, and tool calls given as (name, arguments-as-written); `changes`
    replace top-level fields (e.g. usage=None)."""
    tool_calls = [
        {"id": f"call_{i}", "type": "function", "function": {"name": name, "arguments": arguments}}
        for i, (name, arguments) in enumerate(calls)
    ]
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if tool_calls:
        message["tool_calls"] = tool_calls
    body = {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": 0,
        "model": "scripted",
        "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls" if tool_calls else "stop"}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }
    body.update(changes)
    return body


def with_message(**message: Any) -> dict[str, Any]:
    """A chat.completion body whose first choice's message is exactly `message`."""
    return completion(choices=[{"index": 0, "message": message, "finish_reason": "stop"}])


def error(status: int, headers: Mapping[str, str] | None = None) -> Raw:
    """An OpenAI-style error answer."""
    body = json.dumps({"error": {"message": f"scripted {status}", "type": "scripted_error"}}).encode()
    return Raw(body, status, {"Content-Type": "application/json", **(headers or {})})


@dataclass
class ScriptedServer:
    """Answers from `script`; records every request body."""

    script: list[Any] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)
    url: str = ""

    def next_answer(self, body: dict[str, Any]) -> Any:
        self.requests.append(body)
        return self.script.pop(0) if len(self.script) > 1 else self.script[0]

    def tool_results(self, request: int) -> list[str]:
        return [m["content"] for m in self.requests[request]["messages"] if m["role"] == "tool"]

    def settings(self, **changes: Any) -> CoachSettings:
        """Coach settings pointing at this server (no retries unless `changes` say so)."""
        values: dict[str, Any] = {
            "openai_api_key": "sk-test",
            "openai_base_url": self.url,
            "openai_model": "scripted-model",
            "openai_timeout_seconds": 5.0,
            "openai_max_retries": 0,
        }
        values.update(changes)
        return CoachSettings(**values)


def _as_raw(answer: Any) -> Raw:
    if isinstance(answer, Raw):
        return answer
    status, payload = answer if isinstance(answer, tuple) else (200, answer)
    return Raw(json.dumps(payload).encode(), status)


@contextmanager
def scripted_server() -> Iterator[ScriptedServer]:
    scripted = ScriptedServer()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            answer = scripted.next_answer(body)
            if isinstance(answer, Hang):
                scripted.release.wait(timeout=answer.seconds)
                return
            raw = _as_raw(answer)
            self.send_response(raw.status)
            for name, value in raw.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(raw.body)))
            self.end_headers()
            self.wfile.write(raw.body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    scripted.url = f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    try:
        yield scripted
    finally:
        scripted.release.set()
        httpd.shutdown()
        httpd.server_close()


def closed_port_url() -> str:
    """A base URL on 127.0.0.1 where nothing listens: connections are refused."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"
