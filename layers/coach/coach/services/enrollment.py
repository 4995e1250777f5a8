"""Researchers' use cases: enroll, inspect, update, reset and delete participants."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from coach.domain.arms import StudyArms, allocation, default_study_arms
from coach.domain.audit import SYSTEM, Action, Actor, AuditEntry, FieldChange, field_changes
from coach.domain.decisions import DecisionPoint
from coach.domain.deletion import Deletion
from coach.domain.errors import Conflict, InvalidField, NotFound, PhoneNumberTaken
from coach.domain.flow import FlowState, SafetyReview, SubState
from coach.domain.message import Message, ResearchEvent
from coach.domain.nudges import next_slot
from coach.domain.participant import (
    Participant,
    ParticipantStatus,
    canonical_phone_number,
    valid_timezone,
)
from coach.domain.profile import UserProfile
from coach.domain.schedules import SCHEDULED_STATUSES, schedule_names
from coach.domain.times import same_local_time
from coach.domain.work import ConversationWork, WorkKind
from coach.ports import (
    AuditLog,
    Clock,
    EnrollmentSequence,
    Page,
    ParticipantArchive,
    ParticipantStore,
    Scheduler,
    WorkQueue,
)
from coach.services.deletion import ParticipantDeletion, TimeLeft
from coach.services.schedules import reconcile, reconcile_stored

PhoneText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=32)]
ShortText = Annotated[str, StringConstraints(strip_whitespace=True, max_length=120)]
LongText = Annotated[str, StringConstraints(strip_whitespace=True, max_length=2000)]
TimezoneText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
ArmName = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^[a-z0-9][a-z0-9_-]{0,39}$")]

UPDATE_ATTEMPTS = 5  # optimistic-locking retries before giving up with 409


class EnrollParticipant(BaseModel):
    """Body of POST /conversation/participants."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"phone_number": "+1 (206) 555-0100", "timezone": "America/Los_Angeles"}]},
    )

    phone_number: PhoneText = Field(
        description="Any common format; a number without +country is read in the default region"
    )
    name: ShortText | None = None
    gender: ShortText | None = None
    ethnicity: ShortText | None = None
    background: LongText | None = Field(None, description="Free text the coach may use to personalise")
    timezone: TimezoneText | None = Field(None, description="IANA timezone; the deployment's default when absent")
    study_arm: ArmName | None = Field(None, description="The study arm; allocated by the study's design when absent")


class UpdateParticipant(BaseModel):
    """Body of PUT /conversation/participants/{id}: only the fields present change. null clears name, gender,
    ethnicity and background; phone_number, timezone and status may not be null (422 naming the field)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"status": "paused"}]})

    phone_number: PhoneText | None = Field(None, description="A new number; may not be null (422)")
    name: ShortText | None = Field(None, description="null clears the stored name")
    gender: ShortText | None = Field(None, description="null clears it")
    ethnicity: ShortText | None = Field(None, description="null clears it")
    background: LongText | None = Field(None, description="null clears it (the coach is told no background)")
    timezone: TimezoneText | None = Field(
        None, description="A canonical IANA zone of a region, e.g. America/New_York; may not be null (422)"
    )
    status: ParticipantStatus | None = Field(None, description="may not be null (422)")


class ParticipantDetail(Participant):
    """A participant with where their conversation and intervention stand (GET /conversation/participants/{id})."""

    sub_state: SubState = Field(description="INTAKE or FEEDBACK")
    consent: bool | None = Field(None, description="null until asked and answered")
    habit_profile: UserProfile
    daily_time: str | None = Field(None, description="The daily nudge's local time (HH:MM), once intake set it")
    next_nudge_at: datetime | None = Field(None, description="The next scheduled decision point, in UTC")
    pending_reminder_at: datetime | None = Field(None, description="When the pending reminder is due, in UTC")
    needs_review: bool = Field(
        False, description="A text screened as a safety concern: no nudges until a researcher clears the flag"
    )
    safety_review: SafetyReview | None = Field(None, description="The flag: category, rule and when (no text)")


class ConversationView(BaseModel):
    """Where a participant's conversation stands."""

    participant_id: str
    current_state: str
    sub_state: SubState
    updated_at: datetime


_REQUIRED_ON_UPDATE = ("phone_number", "timezone", "status")
_BACKGROUND_FIELDS = {"name", "gender", "ethnicity", "background", "timezone"}
_AUDITED_FIELDS = {"phone_number", "name", "gender", "ethnicity", "background", "timezone", "status", "study_arm"}


@dataclass
class EnrollmentService:
    store: ParticipantStore
    queue: WorkQueue
    clock: Clock
    default_phone_region: str = "US"
    default_timezone: str = "America/New_York"
    new_id: Callable[[], str] = field(default=lambda: str(uuid.uuid4()))
    on_queue_failure: Callable[[str, Exception], None] | None = None
    scheduler: Scheduler | None = None  # changes of the record reconcile the participant's schedules
    audit: AuditLog | None = None  # the researchers' trail (read, tombstones); entries are written with changes
    arms: StudyArms = field(default_factory=default_study_arms)
    seed: str = ""  # the study's seed: allocation by permuted blocks reproduces from it
    sequence: EnrollmentSequence | None = None  # None: everyone in the first arm of the design (tests)
    new_audit_id: Callable[[], str] = field(default=lambda: uuid.uuid4().hex)
    archive: ParticipantArchive | None = None  # what retention archived: a deletion removes it too

    def enroll(self, command: EnrollParticipant, actor: Actor = SYSTEM) -> Participant:
        """Create participant, phone index and intake flow state at once, then queue the greeting."""
        now = self.clock.now()
        phone = canonical_phone_number(command.phone_number, self.default_phone_region)
        if self.store.participant_id_for_phone(phone) is not None:
            raise PhoneNumberTaken(phone)  # before the allocation: a repeat must not use up a place in a block
        arm, allocated = self._arm_for(command.study_arm)
        participant = Participant(
            id=self.new_id(),
            phone_number=phone,
            name=command.name or None,
            gender=command.gender or None,
            ethnicity=command.ethnicity or None,
            background=command.background or None,
            timezone=valid_timezone(command.timezone) if command.timezone else self.default_timezone,
            study_arm=arm,
            enrolled_at=now,
            created_at=now,
            updated_at=now,
        )
        flow = FlowState.start(participant.id, participant.background_text(), now)
        enrolled = ResearchEvent(
            participant_id=participant.id,
            kind="enrolled",
            at=now,
            data={"timezone": participant.timezone, "arm": arm, "allocation": allocated},
        )
        record = participant.model_dump(mode="json", include=_AUDITED_FIELDS)
        entry = self._entry(actor, "create", now, participant.id, field_changes({}, record))
        self.store.create_participant(participant, flow, [enrolled], audit=[entry])
        self._queue(ConversationWork(kind=WorkKind.ENROLLED, participant_id=participant.id, occurred_at=now))
        return participant

    def _arm_for(self, requested: str | None) -> tuple[str, dict[str, Any]]:
        """The arm given (it must be one of the study's), or the next of the seeded permuted blocks."""
        if requested is not None:
            try:
                self.arms.arm(requested)
            except InvalidField as exc:
                raise InvalidField("study_arm", exc.message) from exc
            return requested, {"arm": requested, "how": "given"}
        if self.sequence is None:
            first = self.arms.names()[0]
            return first, {"arm": first, "how": "only_arm"}
        allocated = allocation(self.arms, self.seed, self.sequence.next())
        return allocated.arm, {**allocated.as_event_data(), "how": "permuted_blocks"}

    def get(self, participant_id: str) -> Participant:
        return self.store.get_participant(participant_id)

    def detail(self, participant_id: str) -> ParticipantDetail:
        participant = self.store.get_participant(participant_id)
        flow = self.store.get_flow_state(participant_id)
        now = self.clock.now()
        schedule = flow.daily_schedule
        next_nudge = None
        if schedule is not None and participant.status in SCHEDULED_STATUSES:
            next_nudge = next_slot(schedule.time, participant.timezone, now)
        return ParticipantDetail(
            **participant.model_dump(),
            sub_state=flow.sub_state,
            consent=flow.consent,
            habit_profile=flow.user_profile,
            daily_time=schedule.time if schedule else None,
            next_nudge_at=next_nudge,
            pending_reminder_at=flow.pending_reminder.due_at if flow.pending_reminder else None,
            needs_review=flow.safety_review is not None,
            safety_review=flow.safety_review,
        )

    def clear_safety_flag(
        self, participant_id: str, actor: Actor = SYSTEM, note: str | None = None
    ) -> ParticipantDetail:
        """A researcher has reviewed the flagged text: nudges resume with the next decision point. NotFound when
        there is no flag (cleared already, or never raised)."""
        self.store.get_participant(participant_id)
        for attempt in range(UPDATE_ATTEMPTS):
            now = self.clock.now()
            flow = self.store.get_flow_state(participant_id)
            review = flow.safety_review
            if review is None:
                raise NotFound(f"participant {participant_id} has no safety flag to clear")
            flag = {"category": review.category, "rule": review.rule, "flagged_at": review.flagged_at.isoformat()}
            event = ResearchEvent(
                participant_id=participant_id, kind="safety_flag_cleared", at=now, data={**flag, "by": actor.name}
            )
            entry = self._entry(actor, "clear_flag", now, participant_id, None, **flag, note=note)
            try:
                self.store.save_flow_state(
                    flow.model_copy(update={"safety_review": None, "updated_at": now}), [event], audit=[entry]
                )
            except Conflict:
                if attempt == UPDATE_ATTEMPTS - 1:
                    raise
                continue
            return self.detail(participant_id)
        raise AssertionError("unreachable")  # pragma: no cover

    def decisions(self, participant_id: str, *, limit: int, next_token: str | None) -> Page[DecisionPoint]:
        self.store.get_participant(participant_id)
        return self.store.list_decisions(participant_id, limit=limit, next_token=next_token)

    def list(self, *, status: ParticipantStatus | None, limit: int, next_token: str | None) -> Page[Participant]:
        return self.store.list_participants(status=status, limit=limit, next_token=next_token)

    def update(self, participant_id: str, command: UpdateParticipant, actor: Actor = SYSTEM) -> Participant:
        """Apply the fields present in `command`; a lost race reloads and applies them again. Then the
        participant's schedules are made to match (a timezone or status change moves or removes them): a
        repeat of the same request changes nothing more and repairs them if that step failed."""
        changes = command.model_dump(include=command.model_fields_set)
        for name in _REQUIRED_ON_UPDATE:
            if name in changes and changes[name] is None:
                raise InvalidField(name, "cannot be null")
        if "phone_number" in changes:
            changes["phone_number"] = canonical_phone_number(changes["phone_number"], self.default_phone_region)
        if "timezone" in changes:
            changes["timezone"] = valid_timezone(changes["timezone"])
        for attempt in range(UPDATE_ATTEMPTS):
            try:
                updated = self._apply(participant_id, changes, actor)
            except Conflict:
                if attempt == UPDATE_ATTEMPTS - 1:
                    raise
                continue
            self._reconcile(participant_id)
            return updated
        raise AssertionError("unreachable")  # pragma: no cover

    def delete(self, participant_id: str, actor: Actor = SYSTEM, time_left: TimeLeft | None = None) -> Deletion:
        """Every item of the participant, their archived items and their schedules, as far as `time_left`
        allows (coach.domain.deletion). Schedules first: a failure leaves all in place. From the first call on
        the participant is gone for every reader; a repeat carries on where the last stopped (NotFound once
        nothing is left). The audit trail keeps one tombstone, and its entries lose their personal values."""
        tombstone: list[AuditEntry] = []
        try:
            participant: Participant | None = self.store.get_participant(participant_id)
        except NotFound:
            participant = None  # gone for readers already: a deletion under way goes on (else NotFound below)
        if participant is not None:
            if self.scheduler is not None:
                reconcile(self.scheduler, participant_id, {}, schedule_names(participant_id))
            entry = self._entry(
                actor,
                "delete",
                self.clock.now(),
                participant_id,
                enrolled_at=participant.enrolled_at.isoformat(),
                arm=participant.study_arm,
                erased_entries=self._entries_with_personal_data(participant_id),
            )
            tombstone.append(entry)
        deletion = ParticipantDeletion(self.store, self.audit, self.archive)
        return deletion.run(participant_id, tombstone=tombstone, time_left=time_left)

    def _entries_with_personal_data(self, participant_id: str) -> int:
        """How many of the participant's audit entries the deletion erases values of."""
        if self.audit is None:
            return 0
        audit, count, token = self.audit, 0, None
        while True:
            page = audit.entries(participant_id=participant_id, limit=100, next_token=token)
            count += sum(1 for entry in page.items if entry.has_personal_data)
            if not (token := page.next_token):
                return count

    def _reconcile(self, participant_id: str) -> None:
        """The participant's schedules as its stored record and flow state call for them (all read first)."""
        if self.scheduler is not None:
            reconcile_stored(self.store, self.scheduler, participant_id, self.clock.now())

    def reset(self, participant_id: str, actor: Actor = SYSTEM) -> ConversationView:
        """Conversation back to intake with an empty profile; the transcript stays."""
        self.store.get_participant(participant_id)
        for attempt in range(UPDATE_ATTEMPTS):
            now = self.clock.now()
            flow = self.store.get_flow_state(participant_id)
            event = ResearchEvent(
                participant_id=participant_id,
                kind="conversation_reset",
                at=now,
                data={"from": flow.sub_state},
            )
            try:
                entry = self._entry(actor, "reset", now, participant_id, from_sub_state=flow.sub_state.value)
                saved = self.store.save_flow_state(flow.reset(now), [event], audit=[entry])
            except Conflict:
                if attempt == UPDATE_ATTEMPTS - 1:
                    raise
                continue
            self._reconcile(participant_id)  # the reset state has no daily nudge, reminder or transition
            self._queue(ConversationWork(kind=WorkKind.RESET, participant_id=participant_id, occurred_at=now))
            return ConversationView(
                participant_id=participant_id,
                current_state=saved.current_state,
                sub_state=saved.sub_state,
                updated_at=saved.updated_at,
            )
        raise AssertionError("unreachable")  # pragma: no cover

    def transcript(self, participant_id: str, *, limit: int, next_token: str | None) -> Page[Message]:
        self.store.get_participant(participant_id)
        return self.store.list_messages(participant_id, limit=limit, next_token=next_token)

    def events(self, participant_id: str, *, limit: int, next_token: str | None) -> Page[ResearchEvent]:
        self.store.get_participant(participant_id)
        return self.store.list_events(participant_id, limit=limit, next_token=next_token)

    def audit_entries(self, *, participant_id: str | None, limit: int, next_token: str | None) -> Page[AuditEntry]:
        if self.audit is None:
            return Page([])
        return self.audit.entries(participant_id=participant_id, limit=limit, next_token=next_token)

    def record(self, actor: Actor, action: Action, participant_id: str | None = None, **details: Any) -> None:
        """An action that changes no participant record (an export, a message): on the trail first."""
        if self.audit is not None:
            self.audit.append(self._entry(actor, action, self.clock.now(), participant_id, **details))

    def _entry(
        self,
        actor: Actor,
        action: Action,
        now: datetime,
        participant_id: str | None,
        changes: dict[str, FieldChange] | None = None,
        **details: Any,
    ) -> AuditEntry:
        return AuditEntry.of(actor, action, now, self.new_audit_id(), participant_id, changes, **details)

    def _apply(self, participant_id: str, changes: dict[str, Any], actor: Actor = SYSTEM) -> Participant:
        current = self.store.get_participant(participant_id)
        changed = {name: value for name, value in changes.items() if getattr(current, name) != value}
        if not changed:
            return current
        now = self.clock.now()
        updated = current.model_copy(update={**changed, "updated_at": now})
        events = [
            ResearchEvent(
                participant_id=participant_id,
                kind="participant_updated",
                at=now,
                data={"fields": sorted(changed)},  # names only: values may identify the person
            )
        ]
        if "status" in changed:
            events.append(
                ResearchEvent(
                    participant_id=participant_id,
                    kind="status_changed",
                    at=now,
                    data={"from": current.status.value, "to": updated.status.value},
                )
            )
        flow = None
        if _BACKGROUND_FIELDS & changed.keys() or "status" in changed:
            stored = self.store.get_flow_state(participant_id)
            followed = _follow_participant(stored, current, updated, now)
            same = followed.model_copy(update={"updated_at": stored.updated_at}) == stored
            flow = None if same else followed
        before = current.model_dump(mode="json", include=set(changed))
        after = updated.model_dump(mode="json", include=set(changed))
        entry = self._entry(actor, "update", now, participant_id, field_changes(before, after))
        return self.store.update_participant(
            updated,
            previous_phone=current.phone_number if "phone_number" in changed else None,
            flow=flow,
            events=events,
            audit=[entry],
        )

    def _queue(self, work: ConversationWork) -> None:
        """Queue work for the conversation function. The stored change stands if this fails."""
        try:
            self.queue.send(work)
        except Exception as exc:
            if self.on_queue_failure is None:
                raise
            self.on_queue_failure(work.kind.value, exc)


def _follow_participant(flow: FlowState, before: Participant, after: Participant, now: datetime) -> FlowState:
    """The flow state after a change of the participant record: the coach's background, and for a new
    timezone the same local times in it (pending reminder and transition); a daily slot that begins to
    apply now (rezoned, or resumed after withdrawal) starts the watchdog's expectations now."""
    update: dict[str, Any] = {"participant_background": after.background_text(), "updated_at": now}
    rezoned = before.timezone != after.timezone
    if rezoned:
        if flow.pending_reminder is not None:
            due = same_local_time(flow.pending_reminder.due_at, before.timezone, after.timezone)
            update["pending_reminder"] = flow.pending_reminder.model_copy(update={"due_at": due})
        if flow.pending_transition is not None:
            due = same_local_time(flow.pending_transition.due_at, before.timezone, after.timezone)
            update["pending_transition"] = flow.pending_transition.model_copy(update={"due_at": due})
    resumed = before.status not in SCHEDULED_STATUSES and after.status in SCHEDULED_STATUSES
    if flow.daily_schedule is not None and (rezoned or resumed):
        update["daily_schedule"] = flow.daily_schedule.model_copy(update={"since": now})
    return flow.model_copy(update=update)
