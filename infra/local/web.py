"""Plain HTTP request and response values: what the gateway hands to whatever serves a path, so the
API Gateway emulator, a fake Twilio API and the clock endpoints all plug in the same way."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl


@dataclass(frozen=True)
class HttpRequest:
    method: str  # upper case
    path: str  # as sent, still percent-encoded, without the query string
    query: str  # the raw query string, "" when none
    headers: tuple[tuple[str, str], ...]  # in the order sent, names as sent
    body: bytes = b""
    source_ip: str = "127.0.0.1"
    protocol: str = "HTTP/1.1"

    def header(self, name: str) -> str | None:
        """The last value of a header, matched without regard to case (as API Gateway's `headers`)."""
        wanted = name.lower()
        values = [value for key, value in self.headers if key.lower() == wanted]
        return values[-1] if values else None

    def query_pairs(self) -> list[tuple[str, str]]:
        return parse_qsl(self.query, keep_blank_values=True)

    def json(self) -> Any:
        """The body as JSON; ValueError when it is not."""
        return json.loads(self.body.decode("utf-8") or "null")


@dataclass(frozen=True)
class HttpResponse:
    status: int
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""


# Serves one request under a mounted prefix. Returning None means "not mine": the gateway carries on.
RouteHandler = Callable[[HttpRequest], HttpResponse | None]


def json_response(status: int, payload: Any, headers: tuple[tuple[str, str], ...] = ()) -> HttpResponse:
    body = json.dumps(payload).encode("utf-8")
    return HttpResponse(status, (("Content-Type", "application/json"), *headers), body)
