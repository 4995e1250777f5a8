"""The participant store on DynamoDB: one table, conditional writes, transactions (DESIGN §3)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from coach.adapters.dynamodb_audit import audit_attributes
from coach.adapters.dynamodb_items import (
    DECISION_PREFIX,
    EVENT_PREFIX,
    FLOW_SK,
    MESSAGE_PREFIX,
    PARTICIPANTS_GSI1PK,
    PHONE_SK,
    PROFILE_SK,
    decode_page_token,
    from_attributes,
    key,
    participant_pk,
    phone_pk,
    sortable_time,
    to_attributes,
)
from coach.adapters.dynamodb_table import DynamoDBTable
from coach.domain.audit import AuditEntry
from coach.domain.decisions import DecisionPoint
from coach.domain.errors import Conflict, InvalidPageToken, NotFound, PhoneNumberTaken
from coach.domain.flow import FlowState
from coach.domain.message import Message, ResearchEvent
from coach.domain.participant import Participant, ParticipantStatus
from coach.ports import Page

_BATCH_WRITE_LIMIT = 25
_BATCH_WRITE_ATTEMPTS = 8  # botocore already backs off between attempts of one call


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
        expected = {"PK": None, "SK": None, "GSI1PK": PARTICIPANTS_GSI1PK, "GSI1SK": None}
        start = decode_page_token(next_token, expected) if next_token else None
        query: dict[str, Any] = {
            "IndexName": "GSI1",
            "KeyConditionExpression": "GSI1PK = :pk",
            "ExpressionAttributeValues": {":pk": {"S": PARTICIPANTS_GSI1PK}},
        }
        if status is not None:
            query["FilterExpression"] = "#status = :status"
            query["ExpressionAttributeNames"] = {"#status": "status"}
            query["ExpressionAttributeValues"][":status"] = {"S": status.value}
        items, last = self._fill_page(query, limit, start, ("PK", "SK", "GSI1PK", "GSI1SK"))
        return Page([Participant.model_validate(from_attributes(i)) for i in items], last)

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

    def delete_participant(self, participant_id: str) -> None:
        pk = participant_pk(participant_id)
        participant = self.get_participant(participant_id)
        self._delete_all_but_profile(pk)
        # Profile and phone index last and together: a crash before this leaves a participant whose
        # DELETE can simply be repeated, never a phone index pointing at nothing.
        reasons = self._transact(
            [
                {"Delete": {"TableName": self.table_name, "Key": key(pk, PROFILE_SK)}},
                self._delete(phone_pk(participant.phone_number), PHONE_SK, participant_id),
            ]
        )
        if reasons is not None:
            raise Conflict(f"participant {participant_id} changed while it was being deleted")
        self._delete_all_but_profile(pk)  # anything written while we were deleting

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
            GSI1PK=PARTICIPANTS_GSI1PK,
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

    def _keys_under(self, pk: str) -> Iterator[dict[str, Any]]:
        request: dict[str, Any] = {
            "TableName": self.table_name,
            "KeyConditionExpression": "PK = :pk",
            "ExpressionAttributeValues": {":pk": {"S": pk}},
            "ProjectionExpression": "PK, SK",
        }
        while True:
            response = self.client.query(**request)
            yield from response.get("Items", [])
            if "LastEvaluatedKey" not in response:
                return
            request["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def _delete_all_but_profile(self, pk: str) -> None:
        keys = [k for k in self._keys_under(pk) if k["SK"]["S"] != PROFILE_SK]
        for offset in range(0, len(keys), _BATCH_WRITE_LIMIT):
            requests = [{"DeleteRequest": {"Key": k}} for k in keys[offset : offset + _BATCH_WRITE_LIMIT]]
            for _attempt in range(_BATCH_WRITE_ATTEMPTS):
                response = self.client.batch_write_item(RequestItems={self.table_name: requests})
                requests = response.get("UnprocessedItems", {}).get(self.table_name, [])
                if not requests:
                    break
            else:
                raise RuntimeError(f"DynamoDB left {len(requests)} deletes unprocessed; repeat the delete")


def _failed(reasons: list[dict[str, Any]], index: int) -> bool:
    return len(reasons) > index and reasons[index].get("Code") == "ConditionalCheckFailed"
