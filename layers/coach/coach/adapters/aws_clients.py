"""The AWS SDK clients of the container: one per service, shared by every adapter that does not get its own.

Building a client costs tens of milliseconds (its service model, endpoint rules, credentials), and a client is
safe to share between threads, so each store building its own made cold starts slower for nothing. Clients
come from boto3's default session (a test counting requests on that session sees them all) and are kept per
service, config and the endpoint and region variables the SDK reads: the tests and the local stack change
AWS_ENDPOINT_URL between runs and must never get a client aimed at an earlier endpoint. `forget()` (called
by bootstrap.forget_built_services) drops them all.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Hashable
from typing import Any

import boto3
from botocore.config import Config

# What botocore reads from the environment to choose a client's endpoint and region (AWS_ENDPOINT_URL_<SERVICE>
# too). Read here only to key the cache; botocore reads them itself when it builds the client.
_ENDPOINT_VARIABLES = ("AWS_ENDPOINT_URL", "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "AWS_REGION", "AWS_DEFAULT_REGION")

_clients: dict[Hashable, tuple[Any, Any]] = {}  # key -> (the boto3 session it came from, client)
_lock = threading.Lock()


def client(service: str, config: Config | None = None) -> Any:
    """The shared client of `service` (boto3's name: "dynamodb", "sqs", ...), built on first use.

    `config` should be a module-level constant: clients are kept per config object.
    """
    key = (service, config, _environment())
    found = _clients.get(key)
    if found is not None and found[0] is boto3.DEFAULT_SESSION:
        return found[1]
    with _lock:  # creating clients from one boto3 session is not thread-safe; the local stack runs threads
        found = _clients.get(key)
        if found is not None and found[0] is boto3.DEFAULT_SESSION:
            return found[1]
        built = boto3.client(service, config=config)
        _clients[key] = (boto3.DEFAULT_SESSION, built)
        return built


def forget() -> None:
    """Drop every client, so the next ones are built for the environment of then (tests, the local stack)."""
    with _lock:
        _clients.clear()


def _environment() -> tuple[tuple[str, str], ...]:
    return tuple(
        sorted(
            (name, value)
            for name, value in os.environ.items()
            if name in _ENDPOINT_VARIABLES or name.startswith("AWS_ENDPOINT_URL_")
        )
    )
