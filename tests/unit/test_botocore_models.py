"""tests/support/botocore_models: a new session reads no service model another session already read."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pytest
from botocore.loaders import JSONFileLoader, Loader

from tests.support import botocore_models


def test_a_second_session_reuses_the_parsed_models(monkeypatch: pytest.MonkeyPatch) -> None:
    botocore_models.install()
    boto3.Session(region_name="us-east-1").client("dynamodb")
    reads: list[str] = []
    original = JSONFileLoader.load_file

    def counting(self: JSONFileLoader, file_path: str) -> object:
        reads.append(file_path)
        return original(self, file_path)

    monkeypatch.setattr(JSONFileLoader, "load_file", counting)
    second = boto3.Session(region_name="us-east-1").client("dynamodb")

    assert reads == []
    assert second.meta.service_model.operation_model("TransactWriteItems").name == "TransactWriteItems"


def test_a_loader_with_other_search_paths_reads_its_own_files(tmp_path: Path) -> None:
    botocore_models.install()
    model = Loader().load_service_model("sqs", "service-2")
    service = tmp_path / "sqs" / model["metadata"]["apiVersion"]
    service.mkdir(parents=True)
    changed = {**model, "documentation": "a model of our own"}
    (service / "service-2.json").write_text(json.dumps(changed))

    own = Loader(extra_search_paths=[str(tmp_path)]).load_service_model("sqs", "service-2")

    assert own["documentation"] == "a model of our own"
    assert Loader().load_service_model("sqs", "service-2")["documentation"] != "a model of our own"
