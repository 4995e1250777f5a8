"""Upgrading a table from the version that indexed every participant under one key (GSI1PK = PARTICIPANTS):
`python -m infra.migrate_participant_index` (and the retention job, every hour) gives each profile its status's
key, once, beside the running functions, on moto with the table from template.yaml."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from coach.adapters.dynamodb_items import participant_pk, sortable_time, to_attributes
from coach.adapters.dynamodb_retention import DynamoDBRetentionStore
from coach.adapters.dynamodb_store import DynamoDBParticipantStore
from coach.domain.flow import FlowState
from coach.domain.participant import Participant, ParticipantStatus
from infra import migrate_participant_index
from tests.support.aws import template_resources

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def participant(n: int, status: ParticipantStatus) -> Participant:
    at = T0 + timedelta(minutes=n)
    return Participant(
        id=f"p{n:03d}",
        phone_number=f"+1206555{n:04d}",
        timezone="America/New_York",
        status=status,
        enrolled_at=at,
        created_at=at,
        updated_at=at,
    )


def write_as_the_earlier_version(client: object, table: str, p: Participant) -> None:
    """The profile as the version before status-keyed partitions wrote it."""
    item = to_attributes(
        p,
        PK=participant_pk(p.id),
        SK="PROFILE",
        GSI1PK="PARTICIPANTS",
        GSI1SK=f"{sortable_time(p.created_at)}#{p.id}",
    )
    client.put_item(TableName=table, Item=item)  # type: ignore[attr-defined]


def test_the_backfill_moves_each_old_profile_once_and_leaves_a_rewritten_one_alone() -> None:
    with template_resources() as aws:
        store = DynamoDBParticipantStore(aws.table_name, aws.dynamodb)
        statuses = [ParticipantStatus.ACTIVE, ParticipantStatus.PAUSED, ParticipantStatus.WITHDRAWN]
        old = [participant(n, statuses[n]) for n in range(3)]
        for p in old:
            write_as_the_earlier_version(aws.dynamodb, aws.table_name, p)
        store.create_participant(participant(9, ParticipantStatus.ACTIVE), FlowState.start("p009", "", T0))
        # Given one old profile rewritten by the new version before the backfill reaches it
        store.update_participant(store.get_participant("p001").model_copy(update={"name": "Ada"}))
        assert [p.id for p in store.list_participants(status=None, limit=10, next_token=None).items] == [
            "p001",
            "p009",
        ]

        # When the operator runs the backfill, twice
        said: list[str] = []
        first = migrate_participant_index.main(["--table", aws.table_name], said.append, aws.dynamodb)
        again = migrate_participant_index.main(["--table", aws.table_name], said.append, aws.dynamodb)

        # Then the two untouched profiles moved, once; every list finds everyone where they belong
        assert (first, again) == (0, 0)
        assert said == [
            f"2 participant(s) moved to their status's index key in {aws.table_name}",
            f"0 participant(s) moved to their status's index key in {aws.table_name}",
        ]
        listed = store.list_participants(status=None, limit=10, next_token=None).items
        assert [p.id for p in listed] == ["p000", "p001", "p002", "p009"]
        assert store.get_participant("p001").name == "Ada"
        for status, ids in (
            (ParticipantStatus.ACTIVE, ["p000", "p009"]),
            (ParticipantStatus.PAUSED, ["p001"]),
            (ParticipantStatus.WITHDRAWN, ["p002"]),
        ):
            assert [p.id for p in store.list_participants(status=status, limit=10, next_token=None).items] == ids


def test_the_retention_job_repairs_an_upgraded_table_by_itself() -> None:
    with template_resources() as aws:
        write_as_the_earlier_version(aws.dynamodb, aws.table_name, participant(1, ParticipantStatus.ACTIVE))
        retention = DynamoDBRetentionStore(aws.table_name, aws.dynamodb)

        assert (retention.repair_index(), retention.repair_index()) == (1, 0)

        store = DynamoDBParticipantStore(aws.table_name, aws.dynamodb)
        active = store.list_participants(status=ParticipantStatus.ACTIVE, limit=10, next_token=None).items
        assert [p.id for p in active] == ["p001"]
