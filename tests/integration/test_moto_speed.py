"""infra.local.moto_speed changes how fast moto answers, never what: a failed transaction leaves nothing of
itself and undoes nobody else's write, a query on the table's key reads the same items in the same order (paged,
backwards, filtered), an index's query still sees the whole table, and moto still recognises its services."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from infra.local import moto_speed
from tests.support.aws import Resources, template_resources

moto_speed.install()  # done by tests/conftest.py for every test; said here too, since this module is about it


@pytest.fixture
def table() -> Iterator[tuple[Any, str]]:
    with template_resources() as resources:
        yield resources.dynamodb, resources.table_name


def item(pk: str, sk: str, **more: str) -> dict[str, Any]:
    return {"PK": {"S": pk}, "SK": {"S": sk}, **{k: {"S": v} for k, v in more.items()}}


def everything(client: Any, name: str) -> list[dict[str, Any]]:
    return sorted(client.scan(TableName=name, ConsistentRead=True)["Items"], key=lambda i: (i["PK"]["S"], i["SK"]["S"]))


def test_a_failed_transaction_puts_back_its_own_items_only(table: tuple[Any, str]) -> None:
    client, name = table
    client.put_item(TableName=name, Item=item("P#1", "PROFILE", v="before"))
    client.put_item(TableName=name, Item=item("P#2", "PROFILE", v="other"))
    before = everything(client, name)

    with pytest.raises(ClientError) as failed:
        client.transact_write_items(
            TransactItems=[
                {"Put": {"TableName": name, "Item": item("P#1", "MSG#1", v="new")}},
                {
                    "Update": {
                        "TableName": name,
                        "Key": {"PK": {"S": "P#1"}, "SK": {"S": "PROFILE"}},
                        "UpdateExpression": "SET v = :v",
                        "ExpressionAttributeValues": {":v": {"S": "after"}},
                    }
                },
                {"Delete": {"TableName": name, "Key": {"PK": {"S": "P#2"}, "SK": {"S": "PROFILE"}}}},
                {
                    "ConditionCheck": {
                        "TableName": name,
                        "Key": {"PK": {"S": "P#3"}, "SK": {"S": "PROFILE"}},
                        "ConditionExpression": "attribute_exists(PK)",
                    }
                },
            ]
        )

    assert failed.value.response["Error"]["Code"] == "TransactionCanceledException"
    assert everything(client, name) == before


def test_a_transaction_naming_one_item_twice_changes_nothing(table: tuple[Any, str]) -> None:
    client, name = table
    client.put_item(TableName=name, Item=item("P#1", "PROFILE", v="before"))
    before = everything(client, name)

    with pytest.raises(ClientError) as failed:
        client.transact_write_items(
            TransactItems=[
                {"Put": {"TableName": name, "Item": item("P#1", "PROFILE", v="one")}},
                {"Put": {"TableName": name, "Item": item("P#1", "PROFILE", v="two")}},
            ]
        )

    assert failed.value.response["Error"]["Code"] == "ValidationException"
    assert everything(client, name) == before


def test_a_transaction_that_holds_is_written_whole(table: tuple[Any, str]) -> None:
    client, name = table

    client.transact_write_items(
        TransactItems=[
            {"Put": {"TableName": name, "Item": item("P#1", "PROFILE", v="a")}},
            {"Put": {"TableName": name, "Item": item("P#1", "MSG#1", v="b")}},
        ]
    )

    assert everything(client, name) == [item("P#1", "MSG#1", v="b"), item("P#1", "PROFILE", v="a")]


def test_a_query_on_the_tables_key_reads_its_partition_paged_backwards_and_filtered(table: tuple[Any, str]) -> None:
    client, name = table
    for pk in ("P#1", "P#2", "P#10"):
        for n in range(7):
            client.put_item(TableName=name, Item=item(pk, f"MSG#{n:02d}", kind="even" if n % 2 == 0 else "odd"))
    expected = [item("P#1", f"MSG#{n:02d}", kind="even" if n % 2 == 0 else "odd") for n in range(7)]

    def query(**more: Any) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        start: dict[str, Any] = {}
        values = {":pk": {"S": "P#1"}, ":msg": {"S": "MSG#"}, **more.pop("values", {})}
        while True:
            page = client.query(
                TableName=name,
                KeyConditionExpression="PK = :pk AND begins_with(SK, :msg)",
                ExpressionAttributeValues=values,
                Limit=3,
                **start,
                **more,
            )
            found += page["Items"]
            if "LastEvaluatedKey" not in page:
                return found
            start = {"ExclusiveStartKey": page["LastEvaluatedKey"]}

    assert query() == expected
    assert query(ScanIndexForward=False) == expected[::-1]
    assert query(FilterExpression="kind = :k", values={":k": {"S": "odd"}}) == expected[1::2]
    nobody = client.query(
        TableName=name, KeyConditionExpression="PK = :pk", ExpressionAttributeValues={":pk": {"S": "P#404"}}
    )
    assert nobody["Items"] == []


def test_an_index_query_sees_every_partition_in_the_indexs_order_paged_and_backwards(table: tuple[Any, str]) -> None:
    client, name = table
    # The table's order (P#1 < P#2 < ...) is not the index's (GSI1SK counts down): the answer is the index's
    for n in range(1, 8):
        client.put_item(TableName=name, Item=item(f"P#{n}", "PROFILE", GSI1PK="INBOX", GSI1SK=f"{10 - n:02d}"))
    client.put_item(TableName=name, Item=item("P#9", "PROFILE", GSI1PK="OTHER", GSI1SK="00"))
    client.put_item(TableName=name, Item=item("P#9", "MSG#1"))  # not in the index

    def query(forward: bool) -> list[str]:
        found: list[str] = []
        start: dict[str, Any] = {}
        while True:
            page = client.query(
                TableName=name,
                IndexName="GSI1",
                KeyConditionExpression="GSI1PK = :p",
                ExpressionAttributeValues={":p": {"S": "INBOX"}},
                ScanIndexForward=forward,
                Limit=3,
                **start,
            )
            found += [i["PK"]["S"] for i in page["Items"]]
            if "LastEvaluatedKey" not in page:
                return found
            start = {"ExclusiveStartKey": page["LastEvaluatedKey"]}

    assert query(forward=True) == [f"P#{n}" for n in range(7, 0, -1)]
    assert query(forward=False) == [f"P#{n}" for n in range(1, 8)]


def test_services_are_still_recognised_and_install_twice_is_once() -> None:
    moto_speed.install()

    with template_resources() as resources:
        assert isinstance(resources, Resources)
        assert boto3.client("s3").list_buckets()["Buckets"]
        assert resources.sqs.list_queues()["QueueUrls"]
