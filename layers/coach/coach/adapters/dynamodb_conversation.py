"""The ConversationStore on the one table: inbound texts, turns, the outbox and delivery statuses.

Items (besides those of dynamodb_store.py), all under PK = PARTICIPANT#<id> unless said:
  MSG#<time>#<id>     a transcript message; an unanswered inbound one also carries GSI1PK = INBOX#<id>
  MSGID#<id>          points at a message's sort key, for inbound MessageSids and outbound Twilio SIDs
  WORK#<key>          queued work (enrolled, reset) whose turn is saved
  OUT#<key>           an outbox item; while open it carries GSI1PK = OUTBOX#<id> (a sparse index)
  OUTBOX              the keys of the open outbox items (`open_keys`, a string set): a turn's one read sees
                      whether earlier work left any; the save adds its items, their finish removes them
  PHONE#<e164> / NOT_ENROLLED   the last not-enrolled reply to an unknown number (TTL expires_at)
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

from coach.adapters.dynamodb_items import (
    FLOW_SK,
    MESSAGE_ID_PREFIX,
    PROFILE_SK,
    from_attributes,
    key,
    participant_pk,
    phone_pk,
    set_attributes,
    sortable_time,
    to_attributes,
)
from coach.adapters.dynamodb_table import TRANSACTION_LIMIT, DynamoDBTable, message_sort_key
from coach.domain.decisions import DecisionPoint, DecisionUpdate, decision_sort_key, local_date_of
from coach.domain.errors import AlreadyDone, Conflict, NotFound
from coach.domain.flow import FlowState
from coach.domain.message import Direction, Message, ResearchEvent, status_rank
from coach.domain.outbox import OutboxItem, OutboxKind
from coach.domain.participant import Participant
from coach.ports import FinishedItem, SavedTurn, SentSms, StoredTurn, TurnReads

WORK_PREFIX = "WORK#"
OUTBOX_PREFIX = "OUT#"
OPEN_OUTBOX_SK = "OUTBOX"
_COLLISIONS = 3  # transactions of a finish that may collide with another before the run is retried whole
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

    def load_turn(self, participant_id: str, reads: TurnReads | None = None) -> StoredTurn:
        reads = reads or TurnReads()
        pk = participant_pk(participant_id)
        # The text by its sort key when the work gives its time; else its MessageSid's pointer, in the same read.
        text_sk = None
        if reads.inbound_id is not None:
            at = reads.inbound_at
            text_sk = f"{MESSAGE_ID_PREFIX}{reads.inbound_id}" if at is None else message_sort_key(at, reads.inbound_id)
        works = {f"{WORK_PREFIX}{k}": k for k in reads.work_keys}
        outbox = {f"{OUTBOX_PREFIX}{k}": k for k in reads.outbox_keys}
        wanted = [PROFILE_SK, FLOW_SK, OPEN_OUTBOX_SK, *([text_sk] if text_sk else []), *works, *outbox]
        found = self._get_many(pk, wanted)
        if PROFILE_SK not in found:
            raise NotFound(f"participant {participant_id} not found")
        if FLOW_SK not in found:
            raise NotFound(f"flow state of participant {participant_id} not found")
        inbound = None
        if reads.inbound_id is not None and text_sk is not None:
            item = found.get(text_sk)
            if reads.inbound_at is None:
                item = self._by_pointer(pk, reads.inbound_id, item) if item is not None else None
            elif item is None:  # not at the time the work gives: by MessageSid before saying there is none
                item = self._by_pointer(pk, reads.inbound_id)
            inbound = _inbound(item)
        return StoredTurn(
            participant=Participant.model_validate(found[PROFILE_SK]),
            flow=FlowState.model_validate(found[FLOW_SK]),
            inbound=inbound,
            work_done=frozenset(k for sk, k in works.items() if sk in found),
            outbox={k: OutboxItem.model_validate(found[sk]) for sk, k in outbox.items() if sk in found},
            open_outbox=frozenset(found.get(OPEN_OUTBOX_SK, {}).get("open_keys", [])),
        )

    def inbound_message(self, participant_id: str, message_id: str) -> Message | None:
        return _inbound(self._by_pointer(participant_pk(participant_id), message_id))

    def _by_pointer(self, pk: str, message_id: str, pointer: dict[str, Any] | None = None) -> dict[str, Any] | None:
        """The message a MessageSid points at (`pointer`: its pointer item, when read already)."""
        pointer = pointer or self._get(pk, f"{MESSAGE_ID_PREFIX}{message_id}")
        return None if pointer is None else self._get(pk, str(pointer["sk"]))

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
        participant: Participant | None = None,
        answered: Sequence[Message] = (),
        work_key: str | None = None,
        outbox: Sequence[OutboxItem] = (),
        messages: Sequence[Message] = (),
        events: Sequence[ResearchEvent] = (),
        decisions: Sequence[DecisionPoint] = (),
        decision_updates: Sequence[DecisionUpdate] = (),
    ) -> SavedTurn:
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
        if participant is not None:
            conflicts.append(self._version_check(pk, PROFILE_SK, participant.version))
        news: list[dict[str, Any]] = []
        if work_key is not None:
            news.append(self._put({**key(pk, f"{WORK_PREFIX}{work_key}")}, "attribute_not_exists(PK)"))
        message_sks = {m.message_id: self._message_sk(m) for m in messages}
        stored = [item.model_copy(update={"message_sk": message_sks.get(item.key, item.message_sk)}) for item in outbox]
        news += [self._put(self._outbox_attributes(item), "attribute_not_exists(PK)") for item in stored]
        if stored:
            news.append(self._open_keys(pk, "ADD", [item.key for item in stored]))
        for message in messages:
            news.extend(self._message_puts(message))
        items = conflicts + news + [self._put(self._event_item(e)) for e in events]
        items += [self._put(self._decision_item(d)) for d in decisions]
        items += [self._decision_update(u, flow.updated_at) for u in decision_updates]
        reasons = self._transact(items)
        if reasons is None:
            return SavedTurn(flow.model_copy(update={"version": flow.version + 1}), stored)
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

    def outbox_items(self, participant_id: str, item_keys: Sequence[str]) -> list[OutboxItem]:
        if not item_keys:
            return []
        found = self._get_many(participant_pk(participant_id), [f"{OUTBOX_PREFIX}{k}" for k in item_keys])
        items = [OutboxItem.model_validate(item) for item in found.values()]
        return sorted(items, key=lambda i: (i.created_at, i.key))

    def begin_attempt(self, item: OutboxItem, now: datetime) -> OutboxItem:
        started = item.begin_attempt(now)
        done = self._update(
            participant_pk(item.participant_id),
            f"{OUTBOX_PREFIX}{item.key}",
            "SET #state = :sending, attempts = :next, attempted_at = :now",
            "#state = :state AND attempts = :attempts",
            {
                ":sending": {"S": started.state.value},
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

    def finish_outbox(
        self,
        finished: Sequence[FinishedItem],
        now: datetime,
        *,
        unchanged: tuple[Participant, FlowState] | None = None,
    ) -> list[str]:
        moved: list[str] = []
        fixed = 1 + (0 if unchanged is None else 2)  # the open keys, and the state checks
        chunk: list[FinishedItem] = []
        size = fixed
        for done in finished:
            # An item's writes stay in one transaction; a flush rarely needs more than one.
            writes = 2 + len(done.events) + len(done.decision_updates) + (done.sent is not None)
            if chunk and size + writes > TRANSACTION_LIMIT:
                moved += self._finish(chunk, now, unchanged)
                chunk, size = [], fixed
            chunk.append(done)
            size += writes
        return moved + (self._finish(chunk, now, unchanged) if chunk else [])

    def _finish(
        self, finished: Sequence[FinishedItem], now: datetime, unchanged: tuple[Participant, FlowState] | None
    ) -> list[str]:
        """One transaction for `finished`. A condition that fails narrows the next try: a message a status
        callback moved further keeps its status (forward only), an item another runner moved is left out."""
        moved: set[str] = set()
        status_held: set[str] = set()
        collisions = 0
        while closing := [done for done in finished if done.item.key not in moved]:
            writes: list[dict[str, Any]] = []
            owners: list[tuple[str, str]] = []  # (item key, what the write is) of each write
            pk = participant_pk(closing[0].item.participant_id)
            if unchanged is not None:
                participant, flow = unchanged
                writes += [self._version_check(pk, PROFILE_SK, participant.version)]
                writes += [self._version_check(pk, FLOW_SK, flow.version)]
                owners += [("", "state"), ("", "state")]
            for done in closing:
                for role, write in self._finish_writes(done, now, hold_status=done.item.key in status_held):
                    writes.append(write)
                    owners.append((done.item.key, role))
            writes.append(self._open_keys(pk, "DELETE", [done.item.key for done in closing]))
            owners.append(("", "open_keys"))
            try:
                reasons = self._transact(writes)
            except ClientError as exc:
                # Another transaction on one of these items at that very moment (a status callback): again.
                if exc.response["Error"]["Code"] != "TransactionCanceledException" or collisions == _COLLISIONS:
                    raise
                collisions += 1
                continue
            if reasons is None:
                break
            failed = [owners[i] for i in range(len(owners)) if _failed(reasons, i)]
            if any(role == "state" for _, role in failed):
                raise Conflict("the participant or its flow state changed since it was saved")
            if not failed:
                raise Conflict(f"outbox items of {pk} could not be finished: no condition named as failed")
            for item_key, role in failed:  # each failed try holds a status or leaves an item out
                if role == "message" and item_key not in status_held:
                    status_held.add(item_key)
                else:
                    moved.add(item_key)
        return [done.item.key for done in finished if done.item.key in moved]

    def _finish_writes(self, done: FinishedItem, now: datetime, *, hold_status: bool) -> list[tuple[str, Any]]:
        """The writes that close one item, each named: the item, its message, its SID pointer, events, ledger."""
        item, sent = done.item, done.sent
        pk = participant_pk(item.participant_id)
        update, values = _set_clause(
            {
                "#state": {"S": done.state.value},
                "finished_at": {"S": now.isoformat()},
                "twilio_sid": {"S": sent.sid} if sent is not None else None,
                "error_code": _number(done.error_code),
            }
        )
        values[":state_before"] = {"S": item.state.value}
        values[":attempts"] = {"N": str(item.attempts)}
        writes: list[tuple[str, Any]] = [
            (
                "item",
                self._update_item(
                    pk,
                    f"{OUTBOX_PREFIX}{item.key}",
                    update + " REMOVE GSI1PK, GSI1SK",
                    "#state = :state_before AND attempts = :attempts",
                    values,
                    names={"#state": "state"},
                ),
            )
        ]
        if item.kind is OutboxKind.SMS and item.message_sk:
            status = None if hold_status else (sent.status if sent is not None else done.state.value)
            writes.append(("message", self._transcript_update(pk, item.message_sk, sent, done.error_code, status, now)))
            if sent is not None:
                pointer = {**key(pk, f"{MESSAGE_ID_PREFIX}{sent.sid}"), "sk": {"S": item.message_sk}}
                writes.append(("pointer", self._put(pointer)))
        writes += [("event", self._put(self._event_item(e))) for e in done.events]
        writes += [("ledger", self._decision_update(u, now)) for u in done.decision_updates]
        return writes

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
        self,
        pk: str,
        message_sk: str,
        sent: SentSms | None,
        error_code: int | None,
        status: str | None,
        now: datetime,
    ) -> dict[str, Any]:
        """The message's SID, error code and status, in the finishing transaction. The status moves forward
        only: a callback may have moved it further already (delivered before we stored the SID); then the
        condition fails and the retry comes with `status` None."""
        attributes = {"twilio_sid": {"S": sent.sid} if sent is not None else None, "error_code": _number(error_code)}
        condition = "attribute_exists(PK)"
        names = None
        if status is not None:
            attributes.update(
                {
                    "#status": {"S": status},
                    "status_rank": {"N": str(status_rank(status))},
                    "status_at": {"S": now.isoformat()},
                }
            )
            condition += " AND (attribute_not_exists(status_rank) OR status_rank < :status_rank)"
            names = {"#status": "status"}
        if all(value is None for value in attributes.values()):  # only check the message is there
            check = {"TableName": self.table_name, "Key": key(pk, message_sk), "ConditionExpression": condition}
            return {"ConditionCheck": check}
        update, values = _set_clause(attributes)
        return self._update_item(pk, message_sk, update, condition, values, names)

    def _open_keys(self, pk: str, action: str, item_keys: Sequence[str]) -> dict[str, Any]:
        """Add (ADD) or remove (DELETE) items in the participant's set of open outbox keys."""
        return {
            "Update": {
                "TableName": self.table_name,
                "Key": key(pk, OPEN_OUTBOX_SK),
                "UpdateExpression": f"{action} open_keys :keys",
                "ExpressionAttributeValues": {":keys": {"SS": sorted(set(item_keys))}},
            }
        }

    def _version_check(self, pk: str, sk: str, version: int) -> dict[str, Any]:
        """A transaction's check that an item is still at the version it was read (or saved) at."""
        return {
            "ConditionCheck": {
                "TableName": self.table_name,
                "Key": key(pk, sk),
                "ConditionExpression": "version = :v",
                "ExpressionAttributeValues": {":v": {"N": str(version)}},
            }
        }

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


def _inbound(item: dict[str, Any] | None) -> Message | None:
    if item is None or item.get("direction") != Direction.INBOUND.value:
        return None
    return Message.model_validate(item)


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
