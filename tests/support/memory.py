"""In-memory adapters with the same behaviour as the real ones, for the tests (not shipped in the layer).

The store contract tests (tests/integration/test_store_contract.py) run against this store and the
DynamoDB one alike, so the fake cannot drift from the real thing.
"""

from __future__ import annotations

import base64
import binascii
import json
import shutil
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

from coach.domain.audit import AuditEntry
from coach.domain.decisions import DecisionPoint, DecisionUpdate
from coach.domain.deletion import Deletion
from coach.domain.effects import AlertResearchers
from coach.domain.errors import Conflict, DeliveryUnavailable, InvalidPageToken, NotFound, PhoneNumberTaken
from coach.domain.exports import ExportJob
from coach.domain.flow import FlowState
from coach.domain.message import Message, ResearchEvent
from coach.domain.outbox import OutboxItem
from coach.domain.participant import Participant, ParticipantStatus
from coach.domain.schedules import ScheduleSpec
from coach.domain.work import ConversationWork
from coach.ports import ExistingSchedule, Page

T = TypeVar("T")

_DELETE_BATCH = 25  # as many items as one BatchWriteItem deletes, so both stores stop at the same places


@dataclass
class InMemoryParticipantStore:
    """Implements coach.ports.ParticipantStore in dictionaries, guarded by one lock."""

    participants: dict[str, Participant] = field(default_factory=dict)
    phones: dict[str, str] = field(default_factory=dict)
    flows: dict[str, FlowState] = field(default_factory=dict)
    messages: dict[str, dict[str, Message]] = field(default_factory=dict)
    events: dict[str, list[ResearchEvent]] = field(default_factory=dict)
    decisions: dict[str, dict[str, DecisionPoint]] = field(default_factory=dict)  # by decision id
    audit: list[AuditEntry] = field(default_factory=list)  # kept apart: deleting a participant keeps it
    # Kept here, not in InMemoryConversationStore, so deleting a participant removes them too.
    outbox: dict[str, dict[str, OutboxItem]] = field(default_factory=dict)
    work: dict[str, set[str]] = field(default_factory=dict)
    sids: dict[tuple[str, str], str] = field(default_factory=dict)  # (participant, Twilio SID) -> message id
    deletions: set[str] = field(default_factory=set)  # participants whose deletion began and has not finished
    _lock: threading.RLock = field(default_factory=threading.RLock, repr=False)

    def create_participant(
        self,
        participant: Participant,
        flow: FlowState,
        events: Sequence[ResearchEvent] = (),
        audit: Sequence[AuditEntry] = (),
    ) -> None:
        with self._lock:
            if participant.phone_number in self.phones:
                raise PhoneNumberTaken(participant.phone_number)
            if participant.id in self.participants:
                raise Conflict(f"participant {participant.id} exists already")
            self.participants[participant.id] = participant
            self.phones[participant.phone_number] = participant.id
            self.flows[participant.id] = flow
            self.events.setdefault(participant.id, []).extend(events)
            self.audit.extend(audit)

    def get_participant(self, participant_id: str) -> Participant:
        with self._lock:
            if participant_id not in self.participants:
                raise NotFound(f"participant {participant_id} not found")
            return self.participants[participant_id]

    def participant_id_for_phone(self, phone_number: str) -> str | None:
        with self._lock:
            return self.phones.get(phone_number)

    def list_participants(
        self, *, status: ParticipantStatus | None, limit: int, next_token: str | None
    ) -> Page[Participant]:
        with self._lock:
            ordered = sorted(self.participants.values(), key=_participant_order)
            chosen = [p for p in ordered if status is None or p.status == status]
            return _page(chosen, _participant_order, limit, next_token, f"participants:{status or 'all'}")

    def update_participant(
        self,
        participant: Participant,
        *,
        previous_phone: str | None = None,
        flow: FlowState | None = None,
        events: Sequence[ResearchEvent] = (),
        audit: Sequence[AuditEntry] = (),
    ) -> Participant:
        with self._lock:
            current = self.get_participant(participant.id)
            if current.version != participant.version:
                raise Conflict(f"participant {participant.id} changed since it was read")
            moves_phone = previous_phone is not None and previous_phone != participant.phone_number
            if moves_phone and self.phones.get(previous_phone or "") != participant.id:
                raise Conflict(f"participant {participant.id} changed since it was read")
            if moves_phone and participant.phone_number in self.phones:
                raise PhoneNumberTaken(participant.phone_number)
            if flow is not None and self.flows[participant.id].version != flow.version:
                raise Conflict(f"flow state of participant {participant.id} changed since it was read")
            stored = participant.model_copy(update={"version": participant.version + 1})
            self.participants[participant.id] = stored
            if moves_phone:
                del self.phones[previous_phone or ""]
                self.phones[participant.phone_number] = participant.id
            if flow is not None:
                self.flows[participant.id] = flow.model_copy(update={"version": flow.version + 1})
            self.events.setdefault(participant.id, []).extend(events)
            self.audit.extend(audit)
            return stored

    def delete_participant(
        self,
        participant_id: str,
        *,
        audit: Sequence[AuditEntry] = (),
        time_left: Callable[[], float] | None = None,
    ) -> Deletion:
        with self._lock:
            participant = self.participants.pop(participant_id, None)
            if participant is not None:  # the first call: gone for every reader at once, with the tombstone
                if self.phones.get(participant.phone_number) == participant_id:
                    del self.phones[participant.phone_number]
                self.flows.pop(participant_id, None)
                self.deletions.add(participant_id)
                self.audit.extend(audit)
            elif participant_id not in self.deletions:
                raise NotFound(f"participant {participant_id} not found")
            items = self._items_of(participant_id)
            for offset in range(0, len(items), _DELETE_BATCH):
                if time_left is not None and time_left() <= 0:
                    return Deletion(participant_id=participant_id, items_deleted=offset, items_left=len(items) - offset)
                for remove in items[offset : offset + _DELETE_BATCH]:
                    remove()
            for kept in (self.messages, self.events, self.decisions, self.outbox, self.work):
                kept.pop(participant_id, None)
            return Deletion(participant_id=participant_id, items_deleted=len(items), items_left=0)

    def finish_deletion(self, participant_id: str) -> bool:
        with self._lock:
            if participant_id not in self.deletions:
                return False
            self.deletions.discard(participant_id)
            return True

    def _items_of(self, participant_id: str) -> list[Callable[[], object]]:
        """A remover per item the participant still has (the caller holds the lock)."""
        pid = participant_id
        return [
            *(lambda m=m: self.messages[pid].pop(m, None) for m in list(self.messages.get(pid, {}))),
            *(lambda: self.events[pid].pop() for _ in self.events.get(pid, [])),
            *(lambda d=d: self.decisions[pid].pop(d, None) for d in list(self.decisions.get(pid, {}))),
            *(lambda k=k: self.outbox[pid].pop(k, None) for k in list(self.outbox.get(pid, {}))),
            *(lambda w=w: self.work[pid].discard(w) for w in list(self.work.get(pid, set()))),
            *(lambda s=s: self.sids.pop(s, None) for s in [k for k in self.sids if k[0] == pid]),
        ]

    def get_flow_state(self, participant_id: str) -> FlowState:
        with self._lock:
            if participant_id not in self.flows:
                raise NotFound(f"flow state of participant {participant_id} not found")
            return self.flows[participant_id]

    def save_flow_state(
        self, flow: FlowState, events: Sequence[ResearchEvent] = (), audit: Sequence[AuditEntry] = ()
    ) -> FlowState:
        with self._lock:
            current = self.flows.get(flow.participant_id)
            if current is None or current.version != flow.version:
                raise Conflict(f"flow state of participant {flow.participant_id} changed since it was read")
            stored = flow.model_copy(update={"version": flow.version + 1})
            self.flows[flow.participant_id] = stored
            self.events.setdefault(flow.participant_id, []).extend(events)
            self.audit.extend(audit)
            return stored

    def put_message(self, message: Message) -> bool:
        with self._lock:
            transcript = self.messages.setdefault(message.participant_id, {})
            if message.message_id in transcript:
                return False
            transcript[message.message_id] = message
            return True

    def list_messages(self, participant_id: str, *, limit: int, next_token: str | None) -> Page[Message]:
        with self._lock:
            ordered = sorted(self.messages.get(participant_id, {}).values(), key=_message_order)
            return _page(ordered, _message_order, limit, next_token, f"messages:{participant_id}")

    def list_events(self, participant_id: str, *, limit: int, next_token: str | None) -> Page[ResearchEvent]:
        with self._lock:
            ordered = sorted(self.events.get(participant_id, []), key=lambda e: e.at)
            indexed = list(enumerate(ordered))
            page = _page(indexed, lambda pair: str(pair[0]).zfill(12), limit, next_token, f"events:{participant_id}")
            return Page([event for _, event in page.items], page.next_token)

    def list_decisions(self, participant_id: str, *, limit: int, next_token: str | None) -> Page[DecisionPoint]:
        with self._lock:
            ordered = sorted(self.decisions.get(participant_id, {}).values(), key=lambda d: (d.local_date, d.slot))
            return _page(
                ordered, lambda d: f"{d.local_date}#{d.slot}", limit, next_token, f"decisions:{participant_id}"
            )

    def apply_decision_update(self, update: DecisionUpdate, now: datetime) -> bool:
        """Set fields of a stored decision point; False when there is none (the caller holds the lock)."""
        stored = self.decisions.get(update.participant_id, {}).get(update.decision_id)
        if stored is None:
            return False
        changed = DecisionPoint.model_validate({**stored.model_dump(), **update.changes, "updated_at": now})
        self.decisions[update.participant_id][update.decision_id] = changed
        return True


def _participant_order(participant: Participant) -> str:
    return f"{participant.created_at.astimezone(UTC).isoformat()}#{participant.id}"


def _message_order(message: Message) -> str:
    return f"{message.at.astimezone(UTC).isoformat()}#{message.message_id}"


def _page(items: list[T], sort_key: Callable[[T], str], limit: int, next_token: str | None, scope: str) -> Page[T]:
    """One page of `items` (already in order) after the token's position, and the next token."""
    after: str | None = None
    if next_token:
        try:
            decoded = json.loads(base64.urlsafe_b64decode(next_token + "=" * (-len(next_token) % 4)))
        except (ValueError, UnicodeError, binascii.Error) as exc:
            raise InvalidPageToken("next_token is not a token this API issued") from exc
        if not isinstance(decoded, dict) or decoded.get("scope") != scope or not isinstance(decoded.get("after"), str):
            raise InvalidPageToken("next_token is not a token this API issued")
        after = decoded["after"]
    remaining = [i for i in items if after is None or sort_key(i) > after]
    chosen = remaining[:limit]
    if len(remaining) <= limit or not chosen:
        return Page(chosen)
    token = json.dumps({"scope": scope, "after": sort_key(chosen[-1])})
    return Page(chosen, base64.urlsafe_b64encode(token.encode()).decode().rstrip("="))


class InMemoryWorkQueue:
    """Implements coach.ports.WorkQueue: keeps what was sent, in order."""

    def __init__(self) -> None:
        self.sent: list[ConversationWork] = []

    def send(self, work: ConversationWork) -> None:
        self.sent.append(work)


class ManualClock:
    """A clock that moves only when told to."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 1, 5, 9, 0, tzinfo=UTC)

    def now(self) -> datetime:
        return self._now

    def advance(self, **delta: float) -> datetime:
        self._now += timedelta(**delta)
        return self._now

    def set(self, moment: datetime) -> datetime:
        self._now = moment
        return moment


class InMemoryResearchAlerts:
    """Implements coach.ports.ResearchAlerts: the alerts published, in order; `failing` makes the next ones
    raise DeliveryUnavailable (an SNS outage)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, AlertResearchers]] = []
        self.failing = False

    def safety_flag(self, participant_id: str, alert: AlertResearchers) -> None:
        if self.failing:
            raise DeliveryUnavailable("the alert topic is unreachable (simulated)")
        self.sent.append((participant_id, alert))


class InMemoryScheduler:
    """Implements coach.ports.Scheduler: the schedules that exist now, by name, and every call made."""

    def __init__(self) -> None:
        self.schedules: dict[str, ExistingSchedule] = {}
        self.calls: list[tuple[str, str]] = []  # (get|put|delete, name)

    def get(self, name: str) -> ExistingSchedule | None:
        self.calls.append(("get", name))
        return self.schedules.get(name)

    def put(self, spec: ScheduleSpec, *, exists: bool | None = None) -> None:
        self.calls.append(("put", spec.name))
        self.schedules[spec.name] = ExistingSchedule(spec)

    def delete(self, name: str) -> None:
        self.calls.append(("delete", name))
        self.schedules.pop(name, None)

    def of(self, participant_id: str) -> dict[str, ScheduleSpec]:
        """The participant's schedules, by name."""
        return {
            name: existing.spec
            for name, existing in self.schedules.items()
            if existing.spec.payload.get("participant_id") == participant_id
        }


class InMemoryLlmBudget:
    """Implements coach.ports.LlmBudget: tokens by UTC day."""

    def __init__(self) -> None:
        self.days: dict[str, int] = {}
        self._lock = threading.Lock()

    def spent(self, day: str) -> int:
        with self._lock:
            return self.days.get(day, 0)

    def add(self, day: str, tokens: int) -> None:
        with self._lock:
            self.days[day] = self.days.get(day, 0) + max(tokens, 0)


class InMemoryAuditLog:
    """Implements coach.ports.AuditLog over an InMemoryParticipantStore's trail."""

    def __init__(self, store: InMemoryParticipantStore) -> None:
        self.store = store

    def append(self, entry: AuditEntry) -> None:
        with self.store._lock:
            self.store.audit.append(entry)

    def entries(self, *, participant_id: str | None, limit: int, next_token: str | None) -> Page[AuditEntry]:
        with self.store._lock:
            chosen = sorted(
                (e for e in self.store.audit if participant_id is None or e.participant_id == participant_id),
                key=_audit_order,
            )
            return _page(chosen, _audit_order, limit, next_token, f"audit:{participant_id or ''}")

    def erase_personal_data(self, participant_id: str) -> int:
        with self.store._lock:
            erased = 0
            for n, entry in enumerate(self.store.audit):
                if entry.participant_id == participant_id and entry.has_personal_data:
                    self.store.audit[n] = entry.without_personal_data()
                    erased += 1
            return erased


def _audit_order(entry: AuditEntry) -> str:
    return f"{entry.at.astimezone(UTC).isoformat()}#{entry.id}"


class InMemoryEnrollmentSequence:
    """Implements coach.ports.EnrollmentSequence."""

    def __init__(self) -> None:
        self._next = 0
        self._lock = threading.Lock()

    def next(self) -> int:
        with self._lock:
            self._next += 1
            return self._next - 1


class InMemoryExportJobs:
    """Implements coach.ports.ExportJobs."""

    def __init__(self) -> None:
        self.jobs: dict[str, ExportJob] = {}
        self._lock = threading.Lock()

    def create(self, job: ExportJob) -> None:
        with self._lock:
            if job.id in self.jobs:
                raise Conflict(f"export {job.id} exists")
            self.jobs[job.id] = job

    def get(self, export_id: str) -> ExportJob:
        with self._lock:
            if export_id not in self.jobs:
                raise NotFound(f"export {export_id} not found")
            return self.jobs[export_id]

    def save(self, job: ExportJob) -> ExportJob:
        with self._lock:
            stored = self.jobs.get(job.id)
            if stored is None or stored.version != job.version:
                raise Conflict(f"export {job.id} changed since it was read")
            saved = job.model_copy(update={"version": job.version + 1})
            self.jobs[job.id] = saved
            return saved

    def list(self, *, limit: int, next_token: str | None) -> Page[ExportJob]:
        with self._lock:
            newest = sorted(self.jobs.values(), key=lambda j: j.id, reverse=True)
        return _page(newest, lambda j: _descending(j.id), limit, next_token, "exports")


def _descending(text: str) -> str:
    """A key whose ascending order is `text`'s descending order (for _page, which pages ascending)."""
    return "".join(chr(0x10FFFF - ord(c)) for c in text)


class InMemoryExportFiles:
    """Implements coach.ports.ExportFiles in a folder; a URL is a file:// URL (it does not expire)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def put(self, key: str, path: Path, content_type: str) -> None:
        target = self.root / key
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)

    def url(self, key: str, seconds: int) -> str:
        return (self.root / key).resolve().as_uri()


class InMemoryExportQueue:
    """Implements coach.ports.ExportQueue: keeps the ids sent, in order."""

    def __init__(self) -> None:
        self.sent: list[str] = []

    def send(self, export_id: str) -> None:
        self.sent.append(export_id)
