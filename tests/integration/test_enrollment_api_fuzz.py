"""Property: no body, query or path makes the enrollment API answer 5xx, and errors keep their shape."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.integration.test_enrollment_api import ENROLL, call
from tests.support.api import api_event, response_json
from tests.support.aws import template_resources

FIELDS = ["phone_number", "name", "gender", "ethnicity", "background", "timezone", "status", "id", "version"]

# Hypothesis rarely draws lone surrogates or control characters on its own: mix some in.
nasty = st.sampled_from(["\ud800", "a\udfffb", "\x00", "+1\u202e2065550100", "America/\ud83d", " " * 40])
texts = st.text(max_size=40) | nasty | st.builds(lambda a, b: a + b, st.text(max_size=10), nasty)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | texts,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)
bodies = st.one_of(
    st.dictionaries(st.sampled_from(FIELDS) | texts, json_values, max_size=6).map(json.dumps),
    st.dictionaries(st.sampled_from(FIELDS) | texts, json_values, max_size=6).map(
        lambda d: json.dumps(d, ensure_ascii=False)
    ),
    json_values.map(json.dumps),
    texts,
    st.none(),
)
queries = st.dictionaries(st.sampled_from(["limit", "status", "next_token", "other"]), texts.filter(bool), max_size=3)
routes = st.sampled_from(
    [
        ("POST", "/conversation/participants"),
        ("GET", "/conversation/participants"),
        ("GET", "/conversation/participants/{id}"),
        ("PUT", "/conversation/participants/{id}"),
        ("DELETE", "/conversation/participants/{id}"),
        ("POST", "/conversation/participants/{id}/reset"),
        ("GET", "/conversation/participants/{id}/messages"),
    ]
)
ids = st.sampled_from(["known", "unknown-participant"]) | texts.filter(lambda t: t and "/" not in t)


def test_no_request_makes_the_api_fail(monkeypatch: Any) -> None:
    from coach.bootstrap import forget_built_services

    with template_resources() as aws:
        monkeypatch.setenv("TABLE_NAME", aws.table_name)
        monkeypatch.setenv("QUEUE_URL", aws.queue_url)
        forget_built_services()
        known = response_json(call(api_event("POST", "/conversation/participants", body=ENROLL)))["id"]

        @settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
        @given(route=routes, participant_id=ids, body=bodies, query=queries)
        def check(route: tuple[str, str], participant_id: str, body: str | None, query: dict[str, str]) -> None:
            method, template = route
            pid = known if participant_id == "known" else participant_id
            path = template.replace("{id}", pid)
            event = api_event(method, path, raw_body=body, query=query or None)
            if "{id}" in template:
                event["pathParameters"] = {"id": pid}

            response = call(event)

            assert response["statusCode"] < 500, (method, path, body, query, response["body"])
            if response["statusCode"] >= 400:
                assert set(response_json(response)) == {"error", "details"}

        check()
        forget_built_services()
