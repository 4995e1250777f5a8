"""The ConversationStore on the one table: inbound texts, turns, the outbox and delivery statuses.

Items (besides those of dynamodb_store.py), all under PK = PARTICIPANT#<id> unless said:
  MSG#<time>#<id>     a transcript message; an unanswered inbound one also carries GSI1PK = INBOX#<id>
  MSGID#<id>          points at a message's sort key, for inbound MessageSids and outbound Twilio SIDs
  WORK#<key>          queued work (enrolled, reset) whose turn is saved
  OUT#<key>           an outbox item; while open it carries GSI1PK = OUTBOX#<id> (a sparse index)
  PHONE#<e164> / NOT_ENROLLED   the last not-enrolled reply to an unknown number (TTL expires_at)
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

from coach.adapters.dynamodb_items import (
    MESSAGE_ID_PREFIX,
    from_attributes,
    key,
    participant_pk,
    phone_pk,
    set_attributes,
    sortable_time,
    to_attributes,
)
from coach.adapters.dynamodb_table import DynamoDBTable
from coach.domain.decisions import DecisionPoint, DecisionUpdate, decision_sort_key, local_date_of
from coach.domain.errors import AlreadyDone, Conflict
from coach.domain.flow import FlowState
from coach.domain.message import Direction, Message, ResearchEvent, status_rank
from coach.domain.outbox import OutboxItem, OutboxKind, OutboxState
from coach.ports import SentSms

WORK_PREFIX = "WORK#"
OUTBOX_PREFIX = "OUT#"
NOT_ENROLLED_SK = "NOT_ENROLLED"


def inbox_pk(participant_id: str) -> str:
    return f"INBOX#{participant_id}"


def outbox_pk(participant_id: str) -> str:
    return f"OUTBOX#{participant_id}"


class DynamoDBConversationStore(DynamoDBTable):
    """Implements coach.ports.ConversationStore."""

    # -- the webhook ---------------------------------------------------------------------------

    def record_inbound(self, message: Message) -> bool:
        # Only a text still waiting for its turn goes in the INBOX index (as in the in-memory store).
        waiting = (
            {} if message.turn else {"GSI1PK": inbox_pk(message.participant_id), "GSI1SK": self._message_sk(message)}
        )
        return self._transact(self._message_puts(message, **waiting)) is None

    def claim_not_enrolled_reply(self, phone_number: str, now: datetime, window: timedelta) -> bool:
        until = now + window
        item = {
            **key(phone_pk(phone_number), NOT_ENROLLED_SK),
            "claimed_until": {"S": sortable_time(until)},
            "expires_at": {"N": str(int(until.timestamp()))},
        }
        put = self._put(item, "attribute_not_exists(PK) OR claimed_until <= :now", {":now": {"S": sortable_time(now)}})
        return self._transact([put]) is None

    def update_delivery_status(
        self, participant_id: str, twilio_sid: str, status: str, error_code: int | None, now: datetime
    ) -> bool:
        sk = self._pointer(participant_id, twilio_sid)
        if sk is None:
            return False
        return self._advance_status(participant_pk(participant_id), sk, status, error_code, now)

    def record_callback(
        self, participant_id: str, outbox_key: str, twilio_sid: str, status: str, error_code: int | None, now: datetime
    ) -> bool:
        pk = participant_pk(participant_id)
        item = self._get(pk, f"{OUTBOX_PREFIX}{outbox_key}")
        if item is None or not item.get("message_sk"):
            return False
        message_sk = str(item["message_sk"])
        # The SID is this item's from now on: its later callbacks find the message, no other item claims it.
        self._transact(
            [
                self._put({**key(pk, f"{MESSAGE_ID_PREFIX}{twilio_sid}"), "sk": {"S": message_sk}}),
                self._update_item(
                    pk,
                    f"{OUTBOX_PREFIX}{outbox_key}",
                    "SET reported_sid = if_not_exists(reported_sid, :sid)",
                    "attribute_exists(PK)",
                    {":sid": {"S": twilio_sid}},
                ),
            ]
        )
        moved = self._advance_status(pk, message_sk, status, error_code, now, twilio_sid=twilio_sid)
        if moved and item.get("decision_id"):  # a nudge: its decision point's delivery outcome follows
            changes: dict[str, Any] = {"delivery_status": status}
            if error_code is not None:
                changes["delivery_error_code"] = error_code
            self.update_decision(
                DecisionUpdate(participant_id=participant_id, decision_id=str(item["decision_id"]), changes=changes),
                now,
            )
        return moved

    def sid_claimed(self, participant_id: str, twilio_sid: str) -> bool:
        return self._pointer(participant_id, twilio_sid) is not None

    def _advance_status(
        self, pk: str, sk: str, status: str, error_code: int | None, now: datetime, *, twilio_sid: str | None = None
    ) -> bool:
        """Move a transcript message's status forward, never back (callbacks and our own finish race)."""
        update, values = _set_clause(
            {
                "#status": {"S": status},
                "status_rank": {"N": str(status_rank(status))},
                "status_at": {"S": now.isoformat()},
                "error_code": _number(error_code),
            }
        )
        if twilio_sid is not None:
            update += ", twilio_sid = if_not_exists(twilio_sid, :sid)"
            values[":sid"] = {"S": twilio_sid}
        return self._update(
            pk,
            sk,
            update,
            "attribute_exists(PK) AND (attribute_not_exists(status_rank) OR status_rank < :status_rank)",
            values,
            names={"#status": "status"},
        )

    # -- turns ---------------------------------------------------------------------------------

    def inbound_message(self, participant_id: str, message_id: str) -> Message | None:
        sk = self._pointer(participant_id, message_id)
        item = None if sk is None else self._get(participant_pk(participant_id), sk)
        if item is None or item.get("direction") != Direction.INBOUND.value:
            return None
        return Message.model_validate(item)

    def unanswered_inbound(self, participant_id: str, limit: int) -> list[Message]:
        response = self.client.query(
            TableName=self.table_name,
            IndexName="GSI1",
            KeyConditionExpression="GSI1PK = :pk",
            ExpressionAttributeValues={":pk": {"S": inbox_pk(participant_id)}},
            Limit=limit,
        )
        return [Message.model_validate(from_attributes(i)) for i in response.get("Items", [])]

    def work_done(self, participant_id: str, work_key: str) -> bool:
        return self._get(participant_pk(participant_id), f"{WORK_PREFIX}{work_key}") is not None

    def save_turn(
        self,
        flow: FlowState,
        *,
        answered: Sequence[Message] = (),
        work_key: str | None = None,
        outbox: Sequence[OutboxItem] = (),
        messages: Sequence[Message] = (),
        events: Sequence[ResearchEvent] = (),
        decisions: Sequence[DecisionPoint] = (),
        decision_updates: Sequence[DecisionUpdate] = (),
    ) -> FlowState:
        pid = flow.participant_id
        pk = participant_pk(pid)
        turn_key = work_key or (answered[-1].message_id if answered else sortable_time(flow.updated_at))
        conflicts = [self._flow_put(flow)]
        conflicts += [
            self._update_item(
                pk,
                self._message_sk(m),
                "SET turn = :turn REMOVE GSI1PK, GSI1SK",
                "attribute_exists(PK) AND attribute_not_exists(turn)",
                {":turn": {"S": turn_key}},
            )
            for m in answered
        ]
        news: list[dict[str, Any]] = []
        if work_key is not None:
            news.append(self._put({**key(pk, f"{WORK_PREFIX}{work_key}")}, "attribute_not_exists(PK)"))
        message_sks = {m.message_id: self._message_sk(m) for m in messages}
        for item in outbox:
            stored = item.model_copy(update={"message_sk": message_sks.get(item.key, item.message_sk)})
            news.append(self._put(self._outbox_attributes(stored), "attribute_not_exists(PK)"))
        for message in messages:
            news.extend(self._message_puts(message))
        items = conflicts + news + [self._put(self._event_item(e)) for e in events]
        items += [self._put(self._decision_item(d)) for d in decisions]
        items += [self._decision_update(u, flow.updated_at) for u in decision_updates]
        reasons = self._transact(items)
        if reasons is None:
            return flow.model_copy(update={"version": flow.version + 1})
        if any(_failed(reasons, i) for i in range(len(conflicts))):
            raise Conflict(f"flow state or texts of participant {pid} changed since they were read")
        raise AlreadyDone(f"this turn of participant {pid} was saved before")

    def update_decision(self, update: DecisionUpdate, now: datetime) -> bool:
        request = self._decision_update(update, now)["Update"]
        try:
            self.client.update_item(**request, ConditionExpression="attribute_exists(PK)")
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
            return False  # no such decision point (its participant was deleted): nothing to record
        return True

    def _decision_item(self, decision: DecisionPoint) -> dict[str, Any]:
        return to_attributes(
            decision,
            PK=participant_pk(decision.participant_id),
            SK=decision_sort_key(local_date_of(decision.decision_id), decision.slot),
        )

    def _decision_update(self, update: DecisionUpdate, now: datetime) -> dict[str, Any]:
        """Set fields of a decision point (inside a turn's transaction the point is known to exist: the turn's
        flow condition holds only while the participant does)."""
        expression, names, values = set_attributes({**update.changes, "updated_at": now})
        return {
            "Update": {
                "TableName": self.table_name,
                "Key": key(participant_pk(update.participant_id), decision_sort_key(local_date_of(update.decision_id))),
                "UpdateExpression": expression,
                "ExpressionAttributeNames": names,
                "ExpressionAttributeValues": values,
            }
        }

    # -- the outbox ----------------------------------------------------------------------------

    def open_outbox(self, participant_id: str) -> list[OutboxItem]:
        response = self.client.query(
            TableName=self.table_name,
            IndexName="GSI1",
            KeyConditionExpression="GSI1PK = :pk",
            ExpressionAttributeValues={":pk": {"S": outbox_pk(participant_id)}},
        )
        items = [OutboxItem.model_validate(from_attributes(i)) for i in response.get("Items", [])]
        return [i for i in items if i.open]

    def get_outbox_item(self, participant_id: str, item_key: str) -> OutboxItem | None:
        item = self._get(participant_pk(participant_id), f"{OUTBOX_PREFIX}{item_key}")
        return None if item is None else OutboxItem.model_validate(item)

    def begin_attempt(self, item: OutboxItem, now: datetime) -> OutboxItem:
        started = item.model_copy(
            update={"state": OutboxState.SENDING, "attempts": item.attempts + 1, "attempted_at": now}
        )
        done = self._update(
            participant_pk(item.participant_id),
            f"{OUTBOX_PREFIX}{item.key}",
            "SET #state = :sending, attempts = :next, attempted_at = :now",
            "#state = :state AND attempts = :attempts",
            {
                ":sending": {"S": OutboxState.SENDING.value},
                ":next": {"N": str(started.attempts)},
                ":now": {"S": now.isoformat()},
                ":state": {"S": item.state.value},
                ":attempts": {"N": str(item.attempts)},
            },
            names={"#state": "state"},
        )
        if not done:
            raise Conflict(f"outbox item {item.key} changed since it was read")
        return started

    def finish_outbox_item(
        self,
        item: OutboxItem,
        state: OutboxState,
        now: datetime,
        *,
        sent: SentSms | None = None,
        error_code: int | None = None,
        events: Sequence[ResearchEvent] = (),
        decision_updates: Sequence[DecisionUpdate] = (),
    ) -> None:
        pk = participant_pk(item.participant_id)
        update, values = _set_clause(
            {
                "#state": {"S": state.value},
                "finished_at": {"S": now.isoformat()},
                "twilio_sid": {"S": sent.sid} if sent is not None else None,
                "error_code": _number(error_code),
            }
        )
        values[":state_before"] = {"S": item.state.value}
        values[":attempts"] = {"N": str(item.attempts)}
        items = [
            self._update_item(
                pk,
                f"{OUTBOX_PREFIX}{item.key}",
                update + " REMOVE GSI1PK, GSI1SK",
                "#state = :state_before AND attempts = :attempts",
                values,
                names={"#state": "state"},
            )
        ]
        if item.kind is OutboxKind.SMS and item.message_sk:
            items.append(self._transcript_update(pk, item.message_sk, sent, error_code))
            if sent is not None:
                pointer = {**key(pk, f"{MESSAGE_ID_PREFIX}{sent.sid}"), "sk": {"S": item.message_sk}}
                items.append(self._put(pointer))
        items.extend(self._put(self._event_item(e)) for e in events)
        items.extend(self._decision_update(u, now) for u in decision_updates)
        if self._transact(items) is not None:
            raise Conflict(f"outbox item {item.key} changed since it was read")
        if item.kind is OutboxKind.SMS and item.message_sk:
            # A callback naming the item may have moved the message further already (delivered before we
            # stored the SID): forward only.
            status = sent.status if sent is not None else state.value
            self._advance_status(pk, item.message_sk, status, error_code, now)

    # -- helpers ------------------------------------------------------------------------------

    def _outbox_attributes(self, item: OutboxItem) -> dict[str, Any]:
        return to_attributes(
            item,
            PK=participant_pk(item.participant_id),
            SK=f"{OUTBOX_PREFIX}{item.key}",
            GSI1PK=outbox_pk(item.participant_id),
            GSI1SK=f"{sortable_time(item.created_at)}#{item.key}",
        )

    def _transcript_update(
        self, pk: str, message_sk: str, sent: SentSms | None, error_code: int | None
    ) -> dict[str, Any]:
        """The message's SID and error code, in the finishing transaction; its status moves after it."""
        attributes = {"twilio_sid": {"S": sent.sid} if sent is not None else None, "error_code": _number(error_code)}
        if all(value is None for value in attributes.values()):  # only check the message is there
            check = {
                "TableName": self.table_name,
                "Key": key(pk, message_sk),
                "ConditionExpression": "attribute_exists(PK)",
            }
            return {"ConditionCheck": check}
        update, values = _set_clause(attributes)
        return self._update_item(pk, message_sk, update, "attribute_exists(PK)", values)

    def _pointer(self, participant_id: str, message_id: str) -> str | None:
        item = self._get(participant_pk(participant_id), f"{MESSAGE_ID_PREFIX}{message_id}")
        return None if item is None else str(item["sk"])

    def _update_item(
        self,
        pk: str,
        sk: str,
        update: str,
        condition: str,
        values: dict[str, Any],
        names: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        request: dict[str, Any] = {
            "TableName": self.table_name,
            "Key": key(pk, sk),
            "UpdateExpression": update,
            "ConditionExpression": condition,
            "ExpressionAttributeValues": values,
        }
        if names:
            request["ExpressionAttributeNames"] = names
        return {"Update": request}

    def _update(
        self,
        pk: str,
        sk: str,
        update: str,
        condition: str,
        values: dict[str, Any],
        names: dict[str, str] | None = None,
    ) -> bool:
        """One conditional update; False when the condition failed."""
        return self._transact([self._update_item(pk, sk, update, condition, values, names)]) is None


def _failed(reasons: list[dict[str, Any]], index: int) -> bool:
    return len(reasons) > index and reasons[index].get("Code") == "ConditionalCheckFailed"


def _set_clause(attributes: dict[str, dict[str, str] | None]) -> tuple[str, dict[str, Any]]:
    """`SET a = :a, ...` for the attributes given a value (None leaves one out), and the values.

    A name starting with # is a placeholder the caller declares; its value is named without the #.
    """
    chosen = {name: value for name, value in attributes.items() if value is not None}
    update = "SET " + ", ".join(f"{name} = :{name.lstrip('#')}" for name in chosen)
    return update, {f":{name.lstrip('#')}": value for name, value in chosen.items()}


def _number(value: int | None) -> dict[str, str] | None:
    return None if value is None else {"N": str(value)}
