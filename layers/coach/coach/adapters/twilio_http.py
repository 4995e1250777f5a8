"""The HTTP client under twilio's REST client. Imported only when a message is sent (see twilio_sms.py).

It differs from twilio's own in two ways: it can point the client at another base URL (the local stack's
fake Twilio), and it does not log requests, because twilio's logger writes the query string (phone
numbers) at INFO, which Lambda's JSON logging would keep.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit

from twilio.http.http_client import TwilioHttpClient


class CoachTwilioHttpClient(TwilioHttpClient):  # type: ignore[misc]  # twilio ships no type hints
    def __init__(self, *, timeout: float, base_url: str | None = None) -> None:
        super().__init__(timeout=timeout)
        self.base_url = base_url.rstrip("/") if base_url else None

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        return super().request(method, self.rewrite(url), *args, **kwargs)

    def rewrite(self, url: str) -> str:
        """https://api.twilio.com/2010-04-01/... -> <base_url>/2010-04-01/... when a base URL is set."""
        if not self.base_url:
            return url
        base, target = urlsplit(self.base_url), urlsplit(url)
        return urlunsplit((base.scheme, base.netloc, base.path + target.path, target.query, target.fragment))

    def log_request(self, kwargs: dict[str, Any]) -> None:
        """Deliberately silent: see the module docstring."""

    def log_response(self, status_code: int, response: Any) -> None:
        """Deliberately silent: see the module docstring."""
