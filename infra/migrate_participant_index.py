"""Once, after upgrading from a version that indexed every participant under one key: give each profile its
status's index key (GSI1PK = PARTICIPANTS#<status>), so the participant lists, the watchdog and the exports
find them again.

  python -m infra.migrate_participant_index --stack sms-habit-coach-dev      on AWS: the table from the outputs
  python -m infra.migrate_participant_index --table NAME [--endpoint-url URL]
  python -m infra.migrate_participant_index --local [--port 3000]            the running local stack

Safe to run again, and beside the running functions: a profile rewritten meanwhile already has its new key
and is left alone. The retention job does the same every hour, so an upgrade without this command heals
within the hour; running it right after `sam deploy` closes that hour.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.request
from collections.abc import Callable
from typing import Any

import boto3

from coach.adapters.dynamodb_retention import move_legacy_profiles
from infra.local.resources import FAKE_CREDENTIALS


def stack_table(stack: str, describe: Callable[..., Any] | None = None) -> str:
    """The table's name, from a deployed stack's outputs."""
    describe = describe or boto3.client("cloudformation").describe_stacks
    [found] = describe(StackName=stack)["Stacks"]
    outputs = {o["OutputKey"]: o["OutputValue"] for o in found.get("Outputs", [])}
    return str(outputs["TableName"])


def local_table(port: int) -> tuple[str, str]:
    """(table name, moto's endpoint) of the running local stack, from its GET /_local/resources."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/_local/resources", timeout=10) as answer:
        resources = json.load(answer)
    return str(resources["tables"]["CoachTable"]), str(resources["endpoint_url"])


def main(argv: list[str] | None = None, out: Callable[[str], None] = print, client: Any | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m infra.migrate_participant_index", description=__doc__.split("\n\n")[0]
    )
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--stack", help="a deployed stack's name (its outputs name the table)")
    where.add_argument("--table", help="the table's name")
    where.add_argument("--local", action="store_true", help="the running local stack")
    parser.add_argument("--endpoint-url", help="a DynamoDB endpoint other than AWS's (with --table)")
    parser.add_argument("--port", type=int, default=3000, help="the local stack's port (with --local)")
    args = parser.parse_args(argv)
    options: dict[str, Any] = {}
    if args.stack:
        table = stack_table(args.stack)
    elif args.local:
        table, endpoint = local_table(args.port)
        options = {"endpoint_url": endpoint, "region_name": "us-east-1", **FAKE_CREDENTIALS}
    else:
        table = args.table
        options = {"endpoint_url": args.endpoint_url} if args.endpoint_url else {}
    moved = move_legacy_profiles(client or boto3.client("dynamodb", **options), table)
    out(f"{moved} participant(s) moved to their status's index key in {table}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
