"""The participant store on DynamoDB: one table, conditional writes, transactions (docs/architecture.md,
3 "Data model")."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

from botocore.exceptions import ClientError

from coach.adapters.dynamodb_audit import audit_attributes
from coach.adapters.dynamodb_batches import BATCH_WRITE_LIMIT, delete_keys
from coach.adapters.dynamodb_items import (
    DECISION_PREFIX,
    EVENT_PREFIX,
    FLOW_SK,
    MESSAGE_PREFIX,
    PARTICIPANTS_GSI1PK,
    PHONE_SK,
    PROFILE_SK,
    decode_page_token,
    encode_page_token,
    from_attributes,
    key,
    participant_pk,
    participants_gsi1pk,
    phone_pk,
    sortable_time,
    to_attributes,
)
from coach.adapters.dynamodb_table import DynamoDBTable
from coach.domain.audit import AuditEntry
from coach.domain.decisions import DecisionPoint
from coach.domain.deletion import Deletion
from coach.domain.errors import Conflict, InvalidPageToken, NotFound, PhoneNumberTaken
from coach.domain.flow import FlowState
from coach.domain.message import Message, ResearchEvent
from coach.domain.participant import Participant, ParticipantStatus
from coach.ports import Page

# A deletion under way: under the participant's key until the last of their items is gone, and in the index
# (GSI1PK = DELETIONS) where the retention job finds deletions nobody finished.
DELETION_SK = "DELETION"
DELETIONS_GSI1PK = "DELETIONS"
# The page token of the list of every status (a status's list names its partition instead).
EVERY_STATUS = f"{PARTICIPANTS_GSI1PK}#all"
_KEYS_PER_QUERY = 20 * BATCH_WRITE_LIMIT  # a page of keys, deleted 25 at a time
_MARK_ATTEMPTS = 5


class DynamoDBParticipantStore(DynamoDBTable):
    """Implements coach.ports.ParticipantStore."""

    # -- participants -------------------------------------------------------------------------

    def create_participant(
        self,
        participant: Participant,
        flow: FlowState,
        events: Sequence[ResearchEvent] = (),
        audit: Sequence[AuditEntry] = (),
    ) -> None:
        pk = participant_pk(participant.id)
        items = [
            self._put(self._participant_item(participant), "attribute_not_exists(PK)"),
            self._put(
                {
                    **key(phone_pk(participant.phone_number), PHONE_SK),
                    "participant_id": {"S": participant.id},
                },
                "attribute_not_exists(PK)",
            ),
            self._put(to_attributes(flow, PK=pk, SK=FLOW_SK), "attribute_not_exists(PK)"),
            *(self._put(self._event_item(event)) for event in events),
            *(self._put(audit_attributes(entry)) for entry in audit),
        ]
        reasons = self._transact(items)
        if reasons is None:
            return
        if _failed(reasons, 1):
            raise PhoneNumberTaken(participant.phone_number)
        raise Conflict(f"participant {participant.id} exists already")

    def get_participant(self, participant_id: str) -> Participant:
        item = self._get(participant_pk(participant_id), PROFILE_SK)
        if item is None:
            raise NotFound(f"participant {participant_id} not found")
        return Participant.model_validate(item)

    def participant_id_for_phone(self, phone_number: str) -> str | None:
        item = self._get(phone_pk(phone_number), PHONE_SK)
        return None if item is None else str(item["participant_id"])

    def list_participants(
        self, *, status: ParticipantStatus | None, limit: int, next_token: str | None
    ) -> Page[Participant]:
        """Oldest first (by creation, then id) within a status, and across every status: the list of all merges
        the status partitions, one Query each, so a status change between two pages neither skips nor repeats
        anyone. The token holds the list's scope and the position of the last participant returned."""
        scope = participants_gsi1pk(status) if status is not None else EVERY_STATUS
        after = decode_page_token(next_token, {"GSI1PK": scope, "GSI1SK": None})["GSI1SK"]["S"] if next_token else None
        statuses = [status] if status is not None else list(ParticipantStatus)
        found = [item for s in statuses for item in self._profiles_after(participants_gsi1pk(s), after, limit + 1)]
        found.sort(key=lambda item: str(item["GSI1SK"]["S"]))
        page = found[:limit]
        token = None
        if len(found) > limit and page:
            token = encode_page_token({"GSI1PK": {"S": scope}, "GSI1SK": page[-1]["GSI1SK"]})
        return Page([Participant.model_validate(from_attributes(i)) for i in page], token)

    def _profiles_after(self, partition: str, after: str | None, count: int) -> list[dict[str, Any]]:
        """Up to `count` profiles of one status partition, from the position after `after`."""
        request: dict[str, Any] = {
            "TableName": self.table_name,
            "IndexName": "GSI1",
            "KeyConditionExpression": "GSI1PK = :pk" + (" AND GSI1SK > :after" if after else ""),
            "ExpressionAttributeValues": {":pk": {"S": partition}, **({":after": {"S": after}} if after else {})},
        }
        items: list[dict[str, Any]] = []
        while len(items) < count:
            response = self.client.query(**request, Limit=count - len(items))
            items.extend(response.get("Items", []))
            if "LastEvaluatedKey" not in response:
                break
            request["ExclusiveStartKey"] = response["LastEvaluatedKey"]
        return items[:count]

    def update_participant(
        self,
        participant: Participant,
        *,
        previous_phone: str | None = None,
        flow: FlowState | None = None,
        events: Sequence[ResearchEvent] = (),
        audit: Sequence[AuditEntry] = (),
    ) -> Participant:
        stored = participant.model_copy(update={"version": participant.version + 1})
        items = [self._put(self._participant_item(stored), "version = :v", {":v": {"N": str(participant.version)}})]
        moves_phone = previous_phone is not None and previous_phone != participant.phone_number
        if moves_phone:
            assert previous_phone is not None
            items.append(self._delete(phone_pk(previous_phone), PHONE_SK, participant.id))
            items.append(
                self._put(
                    {
                        **key(phone_pk(participant.phone_number), PHONE_SK),
                        "participant_id": {"S": participant.id},
                    },
                    "attribute_not_exists(PK)",
                )
            )
        if flow is not None:
            items.append(self._flow_put(flow))
        items.extend(self._put(self._event_item(event)) for event in events)
        items.extend(self._put(audit_attributes(entry)) for entry in audit)
        reasons = self._transact(items)
        if reasons is None:
            return stored
        if _failed(reasons, 0):
            self.get_participant(participant.id)  # NotFound when it is gone
            raise Conflict(f"participant {participant.id} changed since it was read")
        if moves_phone and _failed(reasons, 2):
            raise PhoneNumberTaken(participant.phone_number)
        raise Conflict(f"participant {participant.id} changed since it was read")

    def delete_participant(
        self,
        participant_id: str,
        *,
        audit: Sequence[AuditEntry] = (),
        time_left: Callable[[], float] | None = None,
    ) -> Deletion:
        pk = participant_pk(participant_id)
        self._mark_deleted(participant_id, audit)
        deleted, left = self._delete_the_rest(pk, time_left)
        return Deletion(participant_id=participant_id, items_deleted=deleted, items_left=left)

    def finish_deletion(self, participant_id: str) -> bool:
        try:
            self.client.delete_item(
                TableName=self.table_name,
                Key=key(participant_pk(participant_id), DELETION_SK),
                ConditionExpression="attribute_exists(PK)",
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
            return False
        return True

    def _mark_deleted(self, participant_id: str, audit: Sequence[AuditEntry]) -> None:
        """Record, phone index and flow state go at once with the tombstone, and the marker comes: a turn under
        way cannot save (its flow state is gone), the webhook no longer knows the number, nothing lists the
        participant. Two deletes at once: one marks, the other finds the marker and helps with the rest."""
        pk = participant_pk(participant_id)
        spare_phone_index = False
        for _attempt in range(_MARK_ATTEMPTS):
            if self._get(pk, DELETION_SK) is not None:
                return  # marked by an earlier call: carry on with the rest
            item = self._get(pk, PROFILE_SK)
            if item is None:
                raise NotFound(f"participant {participant_id} not found")
            participant = Participant.model_validate(item)
            phone = phone_pk(participant.phone_number)
            items = [
                {
                    "Delete": {
                        "TableName": self.table_name,
                        "Key": key(pk, PROFILE_SK),
                        "ConditionExpression": "version = :v",
                        "ExpressionAttributeValues": {":v": {"N": str(participant.version)}},
                    }
                },
                self._delete(phone, PHONE_SK, participant_id),
                {"Delete": {"TableName": self.table_name, "Key": key(pk, FLOW_SK)}},
                self._put(
                    {
                        **key(pk, DELETION_SK),
                        "participant_id": {"S": participant_id},
                        "GSI1PK": {"S": DELETIONS_GSI1PK},
                        "GSI1SK": {"S": participant_id},
                    },
                    "attribute_not_exists(PK)",
                ),
                *(self._put(audit_attributes(entry)) for entry in audit),
            ]
            if spare_phone_index:
                del items[1]
            try:
                reasons = self._transact(items)
            except ClientError as exc:  # another transaction on these items at the same moment: look again
                if exc.response["Error"]["Code"] != "TransactionCanceledException":
                    raise
                continue
            if reasons is None:
                return
            # A phone index that names someone else (or nobody) is not this participant's to delete.
            spare_phone_index = _failed(reasons, 1) and not _failed(reasons, 0)
        raise Conflict(f"participant {participant_id} changed while it was being deleted; repeat the delete")

    # -- flow state ---------------------------------------------------------------------------

    def get_flow_state(self, participant_id: str) -> FlowState:
        item = self._get(participant_pk(participant_id), FLOW_SK)
        if item is None:
            raise NotFound(f"flow state of participant {participant_id} not found")
        return FlowState.model_validate(item)

    def save_flow_state(
        self, flow: FlowState, events: Sequence[ResearchEvent] = (), audit: Sequence[AuditEntry] = ()
    ) -> FlowState:
        items = [self._flow_put(flow), *(self._put(self._event_item(e)) for e in events)]
        reasons = self._transact([*items, *(self._put(audit_attributes(entry)) for entry in audit)])
        if reasons is not None:
            raise Conflict(f"flow state of participant {flow.participant_id} changed since it was read")
        return flow.model_copy(update={"version": flow.version + 1})

    # -- transcript and research events --------------------------------------------------------

    def put_message(self, message: Message) -> bool:
        return self._transact(self._message_puts(message)) is None

    def list_messages(self, participant_id: str, *, limit: int, next_token: str | None) -> Page[Message]:
        items, last = self._list_prefix(participant_id, MESSAGE_PREFIX, limit, next_token)
        return Page([Message.model_validate(i) for i in items], last)

    def list_events(self, participant_id: str, *, limit: int, next_token: str | None) -> Page[ResearchEvent]:
        items, last = self._list_prefix(participant_id, EVENT_PREFIX, limit, next_token)
        return Page([ResearchEvent.model_validate(i) for i in items], last)

    def list_decisions(self, participant_id: str, *, limit: int, next_token: str | None) -> Page[DecisionPoint]:
        items, last = self._list_prefix(participant_id, DECISION_PREFIX, limit, next_token)
        return Page([DecisionPoint.model_validate(i) for i in items], last)

    # -- helpers ------------------------------------------------------------------------------

    def _participant_item(self, participant: Participant) -> dict[str, Any]:
        return to_attributes(
            participant,
            PK=participant_pk(participant.id),
            SK=PROFILE_SK,
            GSI1PK=participants_gsi1pk(participant.status),
            GSI1SK=f"{sortable_time(participant.created_at)}#{participant.id}",
        )

    def _delete(self, pk: str, sk: str, participant_id: str) -> dict[str, Any]:
        """Delete a phone index item only while it still points at `participant_id`."""
        return {
            "Delete": {
                "TableName": self.table_name,
                "Key": key(pk, sk),
                "ConditionExpression": "participant_id = :id",
                "ExpressionAttributeValues": {":id": {"S": participant_id}},
            }
        }

    def _list_prefix(
        self, participant_id: str, prefix: str, limit: int, next_token: str | None
    ) -> tuple[list[dict[str, Any]], str | None]:
        pk = participant_pk(participant_id)
        start = decode_page_token(next_token, {"PK": pk, "SK": None}) if next_token else None
        if start is not None and not start["SK"]["S"].startswith(prefix):
            raise InvalidPageToken("next_token belongs to another list")
        query = {
            "KeyConditionExpression": "PK = :pk AND begins_with(SK, :prefix)",
            "ExpressionAttributeValues": {":pk": {"S": pk}, ":prefix": {"S": prefix}},
        }
        items, last = self._fill_page(query, limit, start, ("PK", "SK"))
        return [from_attributes(i) for i in items], last

    def _keys_under(self, pk: str) -> Iterator[list[dict[str, Any]]]:
        """The partition's keys, the deletion marker left out, 25 at a time (a page of them read at once)."""
        request: dict[str, Any] = {
            "TableName": self.table_name,
            "KeyConditionExpression": "PK = :pk",
            "ExpressionAttributeValues": {":pk": {"S": pk}},
            "ProjectionExpression": "PK, SK",
            "ConsistentRead": True,
            "Limit": _KEYS_PER_QUERY,
        }
        batch: list[dict[str, Any]] = []
        while True:
            response = self.client.query(**request)
            for k in response.get("Items", []):
                if k["SK"]["S"] != DELETION_SK:
                    batch.append(k)
                if len(batch) == BATCH_WRITE_LIMIT:
                    yield batch
                    batch = []
            if "LastEvaluatedKey" not in response:
                break
            request["ExclusiveStartKey"] = response["LastEvaluatedKey"]  # a position: its item may be gone
        if batch:
            yield batch

    def _delete_the_rest(self, pk: str, time_left: Callable[[], float] | None) -> tuple[int, int]:
        """Delete the partition's items a batch at a time while there is time: (deleted, left). Passes over the
        partition until one finds nothing, so what a writer added meanwhile goes too."""
        deleted = 0
        while True:
            found = 0
            for batch in self._keys_under(pk):
                if time_left is not None and time_left() <= 0:
                    return deleted, self._count_under(pk)
                delete_keys(self.client, self.table_name, batch)
                deleted += len(batch)
                found += len(batch)
            if not found:
                return deleted, 0

    def _count_under(self, pk: str) -> int:
        request: dict[str, Any] = {
            "TableName": self.table_name,
            "KeyConditionExpression": "PK = :pk",
            "ExpressionAttributeValues": {":pk": {"S": pk}},
            "Select": "COUNT",
        }
        count = 0
        while True:
            response = self.client.query(**request)
            count += int(response.get("Count", 0))
            if "LastEvaluatedKey" not in response:
                return max(count - 1, 0)  # all but the marker, which stays until the end
            request["ExclusiveStartKey"] = response["LastEvaluatedKey"]


def _failed(reasons: list[dict[str, Any]], index: int) -> bool:
    return len(reasons) > index and reasons[index].get("Code") == "ConditionalCheckFailed"
