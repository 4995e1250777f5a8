"""Named researcher keys on the local stack (issue 10): RESEARCHER_KEYS, each an API Gateway API key in moto
whose name is the researcher's, and the gateway telling the handler which key came, as on AWS.

Given a stack started with two researchers' keys, when each calls the researchers' API, then the handler's
event carries that key's moto id and moto's get_api_key names the researcher; a wrong key is a 403.
"""

from __future__ import annotations

import io
import json
import os
import urllib.error
import urllib.request
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from typing import Any

import boto3
import pytest

from infra.local import LocalConfig, LocalStack
from infra.local.config import API_KEY_RESEARCHER, DEFAULT_API_KEY, ConfigError, ResearcherKey
from tests.support.aws import local_client as aws

ALICE_KEY = "alice-key-long-enough-for-api-gateway"  # API Gateway's 20 characters or more: stored as is
BOB_KEY = "bob-key-9"  # shorter than API Gateway allows, but the local stack takes it
PARTICIPANTS = "/conversation/participants"


@contextmanager
def handlers_environment() -> Iterator[MutableMapping[str, str]]:
    """os.environ for a stack whose stand-ins build boto3 clients as the handlers do (from the environment),
    put back as it was afterwards (the stack rewrites it)."""
    saved = dict(os.environ)
    try:
        yield os.environ
    finally:
        os.environ.clear()
        os.environ.update(saved)


class StandIns:
    """The enrollment function resolving the researcher as the real one will; the webhook recording."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def enrollment(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        self.events.append(event)
        key_id = event["requestContext"]["identity"]["apiKeyId"]
        # What the enrollment function does on AWS: the key's name is the researcher's.
        name = boto3.session.Session().client("apigateway").get_api_key(apiKey=key_id)["name"]
        return {"statusCode": 200, "body": json.dumps({"researcher": name})}

    def webhook(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        self.events.append(event)
        return {"statusCode": 200, "body": "{}"}


@pytest.fixture(scope="module")
def stand_ins() -> StandIns:
    return StandIns()


@pytest.fixture(scope="module")
def stack(stand_ins: StandIns) -> Iterator[LocalStack]:
    shell = {"PORT": "0", "RESEARCHER_KEYS": f"alice={ALICE_KEY}, bob={BOB_KEY}"}
    with handlers_environment() as environ:
        running = LocalStack(
            LocalConfig.from_environ(shell),
            extensions=[],
            handlers={"EnrollmentFunction": stand_ins.enrollment, "WebhookFunction": stand_ins.webhook},
            environ=environ,
            log=io.StringIO(),
        )
        running.start()
        try:
            yield running
        finally:
            running.stop()


def call(stack: LocalStack, method: str, path: str, key: str | None = None, body: bytes | None = None) -> Any:
    headers = {} if key is None else {"x-api-key": key}
    req = urllib.request.Request(stack.base_url + path, data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as err:
        with err:
            return err.code, json.loads(err.read() or b"null")


# --- the setting ---------------------------------------------------------------------------------------


def test_named_keys_are_read_in_order_with_spaces_around_entries_ignored() -> None:
    config = LocalConfig.from_environ({"RESEARCHER_KEYS": " alice = key-of-alice , bob.b_2=key=with=equals "})

    assert [(r.name, r.value, r.source) for r in config.researchers] == [
        ("alice", "key-of-alice", "RESEARCHER_KEYS"),
        ("bob.b_2", "key=with=equals", "RESEARCHER_KEYS"),
    ]
    assert config.api_key is None  # no local default once the shell names researchers


def test_api_key_alone_is_one_researcher_and_neither_is_the_local_default() -> None:
    assert [(r.name, r.value) for r in LocalConfig.from_environ({"API_KEY": "k"}).researchers] == [
        (API_KEY_RESEARCHER, "k")
    ]
    default = LocalConfig.from_environ({}).researchers
    assert [(r.name, r.value, r.is_local_default) for r in default] == [(API_KEY_RESEARCHER, DEFAULT_API_KEY, True)]


def test_api_key_and_researcher_keys_together_give_everyone_a_key() -> None:
    config = LocalConfig.from_environ({"API_KEY": "shared-dev-key", "RESEARCHER_KEYS": "alice=key-of-alice"})

    assert [(r.name, r.source) for r in config.researchers] == [
        (API_KEY_RESEARCHER, "API_KEY"),
        ("alice", "RESEARCHER_KEYS"),
    ]


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"RESEARCHER_KEYS": " "}, "RESEARCHER_KEYS is set but empty"),
        ({"RESEARCHER_KEYS": "alice=key-of-alice,bob"}, "entry 2 is not name=key"),
        ({"RESEARCHER_KEYS": "alice=key-of-alice,"}, "entry 2 is not name=key"),
        ({"RESEARCHER_KEYS": "al ice=key-of-alice"}, "entry 1: the name must be 1-64 of"),
        ({"RESEARCHER_KEYS": "=key-of-alice"}, "entry 1: the name must be"),
        ({"RESEARCHER_KEYS": f"{'a' * 65}=key-of-alice"}, "entry 1: the name must be"),
        ({"RESEARCHER_KEYS": "alice=s3cr3t"}, r"entry 1 \(alice\): the key has 6 characters; it needs 8 to 128"),
        ({"RESEARCHER_KEYS": f"alice={'k' * 129}"}, "the key has 129 characters"),
        ({"RESEARCHER_KEYS": "alice=key of alice"}, "only printable ASCII characters, no spaces"),
        ({"RESEARCHER_KEYS": "alice=clé-de-alice"}, "only printable ASCII characters"),
        ({"RESEARCHER_KEYS": "alice=key-of-alice,alice=other-key"}, "researcher alice appears twice"),
        ({"RESEARCHER_KEYS": "alice=same-key-1,bob=same-key-1"}, "alice .* and bob .* have the same key"),
        (
            {"API_KEY": "same-key-1", "RESEARCHER_KEYS": "alice=same-key-1"},
            r"local-researcher \(API_KEY\) and alice \(RESEARCHER_KEYS\) have the same key",
        ),
        (
            {"API_KEY": "some-key-1", "RESEARCHER_KEYS": "local-researcher=other-key"},
            "API_KEY is already the key of local-researcher",
        ),
    ],
)
def test_a_bad_researcher_key_setting_is_refused_without_showing_a_key(environ: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message) as refused:
        LocalConfig.from_environ(environ)

    for secret in ("key-of-alice", "other-key", "s3cr3t", "same-key-1", "some-key-1", "key of alice"):
        assert secret not in str(refused.value)


def test_a_config_without_any_key_is_refused() -> None:
    with pytest.raises(ConfigError, match="no researcher key"):
        LocalConfig(api_key=None)


def test_keys_stay_out_of_the_configs_repr() -> None:
    config = LocalConfig.from_environ({"API_KEY": "api-key-value", "RESEARCHER_KEYS": f"alice={ALICE_KEY}"})

    assert "alice" in repr(config)
    assert "api-key-value" not in repr(config)
    assert ALICE_KEY not in repr(config)
    assert ALICE_KEY not in repr(ResearcherKey("alice", ALICE_KEY))


# --- the running stack ---------------------------------------------------------------------------------


def test_each_researchers_key_is_an_api_gateway_key_in_moto_named_after_them(stack: LocalStack) -> None:
    apigateway = aws(stack, "apigateway")

    assert sorted(stack.api_keys) == ["alice", "bob"]
    for name, key in stack.api_keys.items():
        stored = apigateway.get_api_key(apiKey=key.id, includeValue=True)
        assert (stored["name"], stored["enabled"]) == (name, True)
    # API Gateway keeps a value of 20 characters or more as given; moto made up bob's shorter one.
    assert apigateway.get_api_key(apiKey=stack.api_keys["alice"].id, includeValue=True)["value"] == ALICE_KEY


def test_both_researchers_get_in_and_the_handler_finds_who_called(stack: LocalStack, stand_ins: StandIns) -> None:
    for name, key in (("alice", ALICE_KEY), ("bob", BOB_KEY)):
        status, body = call(stack, "GET", PARTICIPANTS, key)

        assert (status, body) == (200, {"researcher": name})
        identity = stand_ins.events[-1]["requestContext"]["identity"]
        assert identity["apiKeyId"] == stack.api_keys[name].id
        assert identity["apiKey"] == key  # as API Gateway puts it


def test_a_wrong_or_missing_key_is_forbidden_before_the_handler_runs(stack: LocalStack, stand_ins: StandIns) -> None:
    seen = len(stand_ins.events)

    for key in (None, "", "alice", ALICE_KEY[:-1], ALICE_KEY + "x", DEFAULT_API_KEY):
        assert call(stack, "GET", PARTICIPANTS, key) == (403, {"message": "Forbidden"}), key

    assert len(stand_ins.events) == seen


def test_routes_without_a_key_have_no_key_id(stack: LocalStack, stand_ins: StandIns) -> None:
    status, _ = call(stack, "POST", "/twilio/sms", ALICE_KEY, b"From=%2B12065550100&Body=hi")

    assert status == 200
    identity = stand_ins.events[-1]["requestContext"]["identity"]
    assert (identity["apiKeyId"], identity["apiKey"]) == (None, None)


def test_the_banner_names_the_researchers_and_shows_no_key(stack: LocalStack) -> None:
    banner = stack.banner()

    assert "alice, bob  (keys from RESEARCHER_KEYS)" in banner
    assert "<the key of alice in RESEARCHER_KEYS>" in banner  # the curl line says where the key is
    assert ALICE_KEY not in banner
    assert BOB_KEY not in banner
    assert DEFAULT_API_KEY not in banner  # not a key of this stack
