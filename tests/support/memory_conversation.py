"""In-memory ConversationStore sharing the data of an InMemoryParticipantStore (tests, `make chat`).

The contract tests run it beside the DynamoDB store, so it behaves the same.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from coach.domain.decisions import DecisionPoint, DecisionUpdate
from coach.domain.errors import AlreadyDone, Conflict
from coach.domain.flow import FlowState
from coach.domain.message import Direction, Message, ResearchEvent, status_rank
from coach.domain.outbox import OutboxItem, OutboxKind
from coach.domain.participant import Participant
from coach.ports import FinishedItem, SavedTurn, StoredTurn, TurnReads
from tests.support.memory import InMemoryParticipantStore


@dataclass
class InMemoryConversationStore:
    """Implements coach.ports.ConversationStore over the participant store's dictionaries."""

    participants: InMemoryParticipantStore
    not_enrolled_claims: dict[str, datetime] = field(default_factory=dict)

    @property
    def outbox(self) -> dict[str, dict[str, OutboxItem]]:
        return self.participants.outbox

    @property
    def work(self) -> dict[str, set[str]]:
        return self.participants.work

    @property
    def sids(self) -> dict[tuple[str, str], str]:
        return self.participants.sids

    @property
    def _lock(self) -> threading.RLock:
        return self.participants._lock

    def _transcript(self, participant_id: str) -> dict[str, Message]:
        return self.participants.messages.setdefault(participant_id, {})

    def record_inbound(self, message: Message) -> bool:
        return self.participants.put_message(message)

    def claim_not_enrolled_reply(self, phone_number: str, now: datetime, window: timedelta) -> bool:
        with self._lock:
            last = self.not_enrolled_claims.get(phone_number)
            if last is not None and now < last + window:
                return False
            self.not_enrolled_claims[phone_number] = now
            return True

    def update_delivery_status(
        self, participant_id: str, twilio_sid: str, status: str, error_code: int | None, now: datetime
    ) -> bool:
        with self._lock:
            message_id = self.sids.get((participant_id, twilio_sid))
            if message_id is None:
                return False
            return self._advance_status(participant_id, message_id, status, error_code)

    def record_callback(
        self, participant_id: str, outbox_key: str, twilio_sid: str, status: str, error_code: int | None, now: datetime
    ) -> bool:
        with self._lock:
            item = self.outbox.get(participant_id, {}).get(outbox_key)
            if item is None or outbox_key not in self._transcript(participant_id):
                return False
            self.sids[(participant_id, twilio_sid)] = outbox_key
            if item.reported_sid is None:
                self.outbox[participant_id][outbox_key] = item.model_copy(update={"reported_sid": twilio_sid})
            moved = self._advance_status(participant_id, outbox_key, status, error_code, twilio_sid)
            if moved and item.decision_id:  # a nudge: its decision point's delivery outcome follows
                changes: dict[str, object] = {"delivery_status": status}
                if error_code is not None:
                    changes["delivery_error_code"] = error_code
                update = DecisionUpdate(participant_id=participant_id, decision_id=item.decision_id, changes=changes)
                self.participants.apply_decision_update(update, now)
            return moved

    def sid_claimed(self, participant_id: str, twilio_sid: str) -> bool:
        with self._lock:
            return (participant_id, twilio_sid) in self.sids

    def _advance_status(
        self, participant_id: str, message_id: str, status: str, error_code: int | None, twilio_sid: str | None = None
    ) -> bool:
        """Forward only, as the DynamoDB store's conditional update (callbacks and our own finish race)."""
        transcript = self._transcript(participant_id)
        message = transcript[message_id]
        if status_rank(status) <= status_rank(message.status or "pending"):
            return False
        update: dict[str, object] = {"status": status}
        if error_code is not None:
            update["error_code"] = error_code
        if twilio_sid is not None and message.twilio_sid is None:
            update["twilio_sid"] = twilio_sid
        transcript[message_id] = message.model_copy(update=update)
        return True

    def load_turn(self, participant_id: str, reads: TurnReads | None = None) -> StoredTurn:
        reads = reads or TurnReads()
        with self._lock:
            participant = self.participants.get_participant(participant_id)
            flow = self.participants.get_flow_state(participant_id)
            inbound = None if reads.inbound_id is None else self.inbound_message(participant_id, reads.inbound_id)
            done = self.work.get(participant_id, set())
            outbox = self.outbox.get(participant_id, {})
            return StoredTurn(
                participant=participant,
                flow=flow,
                inbound=inbound,
                work_done=frozenset(k for k in reads.work_keys if k in done),
                outbox={k: outbox[k] for k in reads.outbox_keys if k in outbox},
                open_outbox=frozenset(k for k, item in outbox.items() if item.open),
            )

    def inbound_message(self, participant_id: str, message_id: str) -> Message | None:
        with self._lock:
            message = self._transcript(participant_id).get(message_id)
            return message if message is not None and message.direction is Direction.INBOUND else None

    def unanswered_inbound(self, participant_id: str, limit: int) -> list[Message]:
        with self._lock:
            waiting = [
                m
                for m in self._transcript(participant_id).values()
                if m.direction is Direction.INBOUND and m.turn is None
            ]
            return sorted(waiting, key=lambda m: (m.at, m.message_id))[:limit]

    def work_done(self, participant_id: str, work_key: str) -> bool:
        with self._lock:
            return work_key in self.work.get(participant_id, set())

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
        with self._lock:
            current = self.participants.flows.get(pid)
            if current is None or current.version != flow.version:
                raise Conflict(f"flow state of participant {pid} changed since it was read")
            known = self.participants.participants.get(pid)
            if participant is not None and (known is None or known.version != participant.version):
                raise Conflict(f"participant {pid} changed since it was read")
            transcript = self._transcript(pid)
            for message in answered:
                stored = transcript.get(message.message_id)
                if stored is None or stored.turn is not None:
                    raise Conflict(f"text {message.message_id} was answered by another turn")
            if work_key is not None and work_key in self.work.get(pid, set()):
                raise AlreadyDone(f"work {work_key} was done already")
            if any(item.key in self.outbox.get(pid, {}) for item in outbox):
                raise AlreadyDone("an outbox item of this decision exists already")
            if any(m.message_id in transcript for m in messages):
                raise AlreadyDone("a transcript message of this decision exists already")
            turn_key = work_key or (answered[-1].message_id if answered else flow.updated_at.isoformat())
            for message in answered:
                transcript[message.message_id] = transcript[message.message_id].model_copy(update={"turn": turn_key})
            if work_key is not None:
                self.work.setdefault(pid, set()).add(work_key)
            for item in outbox:
                self.outbox.setdefault(pid, {})[item.key] = item
            for message in messages:
                transcript[message.message_id] = message
            self.participants.events.setdefault(pid, []).extend(events)
            for decision in decisions:
                self.participants.decisions.setdefault(pid, {})[decision.decision_id] = decision
            for update in decision_updates:
                self.participants.apply_decision_update(update, flow.updated_at)
            stored_flow = flow.model_copy(update={"version": flow.version + 1})
            self.participants.flows[pid] = stored_flow
            return SavedTurn(stored_flow, list(outbox))

    def update_decision(self, update: DecisionUpdate, now: datetime) -> bool:
        with self._lock:
            return self.participants.apply_decision_update(update, now)

    def open_outbox(self, participant_id: str) -> list[OutboxItem]:
        with self._lock:
            items = [i for i in self.outbox.get(participant_id, {}).values() if i.open]
            return sorted(items, key=lambda i: (i.created_at, i.key))

    def get_outbox_item(self, participant_id: str, item_key: str) -> OutboxItem | None:
        with self._lock:
            return self.outbox.get(participant_id, {}).get(item_key)

    def outbox_items(self, participant_id: str, item_keys: Sequence[str]) -> list[OutboxItem]:
        with self._lock:
            outbox = self.outbox.get(participant_id, {})
            items = [outbox[k] for k in dict.fromkeys(item_keys) if k in outbox]
            return sorted(items, key=lambda i: (i.created_at, i.key))

    def begin_attempt(self, item: OutboxItem, now: datetime) -> OutboxItem:
        with self._lock:
            current = self._current(item)
            if not current.open:
                raise Conflict(f"outbox item {item.key} is {current.state}")
            started = current.begin_attempt(now)
            self.outbox[item.participant_id][item.key] = started
            return started

    def finish_outbox(
        self,
        finished: Sequence[FinishedItem],
        now: datetime,
        *,
        unchanged: tuple[Participant, FlowState] | None = None,
    ) -> list[str]:
        moved: list[str] = []
        with self._lock:
            if unchanged is not None:
                participant, flow = unchanged
                stored = self.participants.participants.get(participant.id)
                stored_flow = self.participants.flows.get(flow.participant_id)
                if stored is None or stored_flow is None or stored.version != participant.version:
                    raise Conflict(f"participant {participant.id} changed since it was saved")
                if stored_flow.version != flow.version:
                    raise Conflict(f"flow state of participant {participant.id} changed since it was saved")
            for done in finished:
                try:
                    current = self._current(done.item)
                except Conflict:
                    moved.append(done.item.key)  # another runner moved it meanwhile: theirs to finish
                    continue
                self._finish(current, done, now)
        return moved

    def _finish(self, current: OutboxItem, done: FinishedItem, now: datetime) -> None:
        item, sent, pid = done.item, done.sent, done.item.participant_id
        self.outbox[pid][item.key] = current.model_copy(
            update={"state": done.state, "twilio_sid": sent.sid if sent else None, "error_code": done.error_code}
        )
        transcript = self._transcript(pid)
        if item.kind is OutboxKind.SMS and item.key in transcript:
            message = transcript[item.key]
            update: dict[str, object] = {"twilio_sid": sent.sid if sent else message.twilio_sid}
            if done.error_code is not None:
                update["error_code"] = done.error_code
            transcript[item.key] = message.model_copy(update=update)
            self._advance_status(pid, item.key, sent.status if sent else done.state.value, done.error_code)
            if sent is not None:
                self.participants.sids[(pid, sent.sid)] = item.key
        self.participants.events.setdefault(pid, []).extend(done.events)
        for decision_update in done.decision_updates:
            self.participants.apply_decision_update(decision_update, now)

    def _current(self, item: OutboxItem) -> OutboxItem:
        current = self.outbox.get(item.participant_id, {}).get(item.key)
        if current is None:
            raise Conflict(f"outbox item {item.key} is gone")
        if current.attempts != item.attempts or current.state != item.state:
            raise Conflict(f"outbox item {item.key} changed since it was read")
        return current
