"""Researchers' names from their API keys: each researcher has an API Gateway key named after them, and the
audit trail records that name. Looked up once per key per container (a key's name does not change)."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from coach.adapters import aws_clients


class ApiGatewayKeyNames:
    """Implements coach.ports.ResearcherNames."""

    def __init__(self, client: Any | None = None) -> None:
        self._client = client
        self._names: dict[str, str | None] = {}

    @property
    def client(self) -> Any:
        return self._client if self._client is not None else aws_clients.client("apigateway")

    def name_of(self, key_id: str) -> str | None:
        if key_id not in self._names:
            try:
                self._names[key_id] = str(self.client.get_api_key(apiKey=key_id)["name"])
            except (ClientError, BotoCoreError, KeyError):
                return None  # not cached: the next request asks again
        return self._names[key_id]
