"""docs/openapi.json is what the API serves: a change to the API without `make openapi` fails here."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

DOCUMENT = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"


@pytest.fixture(autouse=True)
def _environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TABLE_NAME", "unused-table")
    monkeypatch.setenv("QUEUE_URL", "unused-queue")


def test_committed_openapi_document_is_current() -> None:
    from functions.enrollment.openapi import render

    assert DOCUMENT.read_text() == render(), "docs/openapi.json is stale: run `make openapi` and commit it"


def test_document_describes_every_route_and_the_error_shape() -> None:
    document = json.loads(DOCUMENT.read_text())

    operations = {(path, method) for path, item in document["paths"].items() for method in item}
    assert operations == {
        ("/conversation/participants", "post"),
        ("/conversation/participants", "get"),
        ("/conversation/participants/{id}", "get"),
        ("/conversation/participants/{id}", "put"),
        ("/conversation/participants/{id}", "delete"),
        ("/conversation/participants/{id}/reset", "post"),
        ("/conversation/participants/{id}/safety-flag", "delete"),
        ("/conversation/participants/{id}/messages", "get"),
        ("/conversation/participants/{id}/events", "get"),
        ("/conversation/participants/{id}/decisions", "get"),
        ("/conversation/audit", "get"),
        ("/conversation/participants/bulk", "post"),
        ("/conversation/participants/{id}/messages", "post"),
        ("/conversation/messages", "post"),
        ("/conversation/exports", "post"),
        ("/conversation/exports", "get"),
        ("/conversation/exports/{id}", "get"),
    }
    create = document["paths"]["/conversation/participants"]["post"]
    assert create["responses"]["409"]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorBody")
    assert document["security"] == [{"api_key": []}]
    # Every researcher route says how it fails, in the one error shape
    for path, item in document["paths"].items():
        for method, operation in item.items():
            errors = {code: r for code, r in operation["responses"].items() if code.startswith("4")}
            assert "422" in errors, (method, path)
            for code, response in errors.items():
                schema = response["content"]["application/json"]["schema"]["$ref"]
                assert schema.endswith("/ErrorBody"), (method, path, code)
    export = document["paths"]["/conversation/exports"]["post"]["responses"]
    assert {"202", "422", "503"} <= set(export)
