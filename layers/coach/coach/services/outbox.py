"""Carry out what turns and nudges saved in the outbox: send SMS, reconcile schedules, then mark them done.

Every item was saved in the same transaction as the state that produced it, so here we only finish
work. A text is saved as being sent (its first attempt begins with the save), so the run that saved it
sends it with no write before; the run then closes every item it finished in one write. An item found
`sending` by a later run (an attempt began, then its runner died) is first looked up at Twilio, so a
message that got through is not sent again; one whose attempt may still be live in another run (for
other work, within the attempt's lease) is left to that run. Right before a send the reachability rule
is asked again for the item's purpose, and a nudge or reminder past its validity window is expired,
never sent late; Twilio is given what is left of the window as the message's ValidityPeriod.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from pydantic import TypeAdapter

from coach.domain.decisions import DecisionUpdate
from coach.domain.effects import AlertResearchers, OutboxEffect, ReconcileSchedules
from coach.domain.errors import Conflict, DeliveryRejected, DeliveryUnavailable, NotFound, SendWindowMissed
from coach.domain.flow import FlowState
from coach.domain.message import ResearchEvent
from coach.domain.outbox import OutboxItem, OutboxKind, OutboxState, callback_params
from coach.domain.participant import Participant
from coach.domain.reachability import unreachable_reasons
from coach.domain.schedules import desired_schedules
from coach.ports import (
    Clock,
    ConversationStore,
    FinishedItem,
    ParticipantStore,
    ResearchAlerts,
    Scheduler,
    SentSms,
    SmsSender,
)
from coach.services.opt_out import set_opted_out
from coach.services.schedules import reconcile

_EFFECT: TypeAdapter[OutboxEffect] = TypeAdapter(OutboxEffect)
# Twilio's clock and ours differ a little; look a bit before the attempt for what it may have sent.
_CLOCK_SKEW = timedelta(minutes=2)
EventSink = Callable[[str, dict[str, object]], None]


@dataclass(frozen=True)
class Saved:
    """What a run has just saved: the participant as it was loaded (the save was conditional on its
    version), the flow state at its new version, and the outbox items as stored."""

    participant: Participant
    flow: FlowState
    outbox: Sequence[OutboxItem] = ()


@dataclass
class OutboxDispatcher:
    participants: ParticipantStore
    conversation: ConversationStore
    sender: SmsSender
    scheduler: Scheduler
    clock: Clock
    alerts: ResearchAlerts | None = None  # None: no alert topic configured (recorded as such)
    on_event: EventSink = lambda kind, data: None

    def flush(
        self,
        participant_id: str,
        saved: Saved | None = None,
        *,
        open_keys: Collection[str] = (),
        look_for_open: bool = False,
        work_id: str | None = None,
    ) -> None:
        """Finish the items this run has just `saved` and those of `open_keys` (open when the turn loaded):
        schedule changes, then texts oldest first; then close them all in one write. `look_for_open`: also
        ask the index of open items (a repeat of work saved before, which may predate the open keys).

        `work_id`: the work this run is for (its items are this run's to recover). Raises DeliveryUnavailable
        (or a scheduler error) for the caller to retry, once what was finished is written.
        """
        just_saved = {item.key: item for item in (saved.outbox if saved is not None else ())}
        store = self.conversation
        indexed = {item.key for item in store.open_outbox(participant_id)} if look_for_open else set()
        # Items left open by earlier work, read consistently (the index may lag behind a write); nearly always
        # there are none, and no request. What this run saved is known from the save itself.
        earlier = sorted((set(open_keys) | indexed) - set(just_saved))
        found = store.outbox_items(participant_id, earlier) if earlier else []
        items = {item.key: item for item in [*found, *just_saved.values()] if item.open}
        run = _Flush(self, participant_id, saved, work_id)
        alert_failed: DeliveryUnavailable | None = None
        try:
            # Schedules first: they follow the stored state whatever happens to the texts, so a Twilio outage
            # cannot keep a reminder from being scheduled or a withdrawn participant's schedule from going.
            for item in sorted(items.values(), key=lambda i: (i.kind is OutboxKind.SMS, i.created_at, i.key)):
                try:
                    run.finish(item, fresh=item.key in just_saved)
                except Conflict:
                    self.moved(item.key, participant_id)  # another runner moved it meanwhile: theirs to finish
                except DeliveryUnavailable as exc:
                    if item.kind is OutboxKind.SMS or not _is_alert(item):
                        raise
                    alert_failed = exc  # the crisis text still goes; the alert is tried again on the retry
        finally:
            run.close()  # whatever stopped the flush, what did go out is recorded
        if alert_failed is not None:
            raise alert_failed

    def moved(self, item_key: str, participant_id: str) -> None:
        """Record an item left to another runner, which moved it first."""
        self.on_event("outbox_item_moved", {"participant_id": participant_id, "outbox_key": item_key})


@dataclass
class _Flush:
    """One flush: the items finished so far (closed together at the end) and the state they were sent on."""

    outbox: OutboxDispatcher
    participant_id: str
    saved: Saved | None
    work_id: str | None
    finished: list[FinishedItem] = field(default_factory=list)
    reconciled: list[str] = field(default_factory=list)  # schedules set from the saved state, not a read
    opted_out: bool = False  # this flush learnt that the carrier has the participant opted out
    _stored: tuple[Participant | None, FlowState | None] | None = None

    def finish(self, item: OutboxItem, *, fresh: bool) -> None:
        """Carry out one item; `fresh`: this run has just saved it."""
        if item.kind is OutboxKind.SMS:
            self._send(item, fresh)
        else:
            self._carry_out(item, fresh)

    def close(self) -> None:
        """One write for every item finished. With schedules set from the saved state, it holds only if that
        state is still stored; else (rare) they are set again from the state stored now."""
        if not self.finished:
            return
        store, now = self.outbox.conversation, self.outbox.clock.now()
        unchanged = (self.saved.participant, self.saved.flow) if self.saved and self.reconciled else None
        try:
            moved = store.finish_outbox(self.finished, now, unchanged=unchanged)
        except Conflict:
            if unchanged is None:
                raise
            participant, flow = self._state(fresh=False, again=True)
            desired = desired_schedules(participant, flow, now)
            reconcile(self.outbox.scheduler, self.participant_id, desired, self.reconciled)
            data: dict[str, object] = {"participant_id": self.participant_id, "names": list(self.reconciled)}
            self.outbox.on_event("schedules_reconciled_again", data)
            moved = store.finish_outbox(self.finished, now)
        for key in moved:
            self.outbox.moved(key, self.participant_id)

    # -- texts -----------------------------------------------------------------------------------

    def _send(self, item: OutboxItem, fresh: bool) -> None:
        now = self.outbox.clock.now()
        if not fresh and item.in_flight(now, self.work_id):
            self.outbox.on_event(
                "outbox_item_in_flight",
                {"participant_id": self.participant_id, "outbox_key": item.key, "work_id": item.work_id},
            )
            return
        participant, flow = self._state(fresh)
        # Asked again now: the participant may have opted out, been paused or withdrawn since the turn.
        if reasons := unreachable_reasons(participant, flow, item.purpose):
            event = self._event(
                item, "message_cancelled", purpose=item.purpose.value, reason=reasons[0], reasons=list(reasons)
            )
            self._done(item, OutboxState.CANCELLED, events=[event])
            return
        assert participant is not None
        assert item.body is not None
        to = participant.phone_number  # the number now: a researcher may have corrected it
        pid = item.participant_id
        sender, store = self.outbox.sender, self.outbox.conversation

        def claimed(sid: str) -> bool:  # owned by another outbox item of the participant
            return sid != item.reported_sid and store.sid_claimed(pid, sid)

        if not fresh and item.state is OutboxState.SENDING and item.attempted_at is not None:
            # An attempt began and its runner died: did it get through? A callback naming this item says so;
            # else a message Twilio created since then, with this body, that no other item owns.
            if item.reported_sid is not None:
                self._done(item, OutboxState.SENT, sent=SentSms(item.reported_sid, "queued", to, item.body))
                return
            earlier = sender.find_sent(to, item.body, item.attempted_at - _CLOCK_SKEW, claimed=claimed)
            if earlier is not None:
                self._done(item, OutboxState.SENT, sent=earlier)
                return
        if item.valid_until is not None and now >= item.valid_until:
            event = self._event(
                item,
                "nudge_expired",
                purpose=item.purpose.value,
                valid_until=item.valid_until.isoformat(),
                attempts=item.attempts,
                reason="not_sent_within_its_window",
            )
            self._done(item, OutboxState.EXPIRED, events=[event])
            return
        # A text just saved was saved as being sent; any other takes the attempt first (Conflict: it lost).
        started = item if fresh else store.begin_attempt(item, now)
        validity = None if item.valid_until is None else math.ceil((item.valid_until - now).total_seconds())
        try:
            sent = sender.send(
                to,
                item.body,
                validity_seconds=validity,
                callback_params=callback_params(pid, item.key),
                claimed=claimed,
            )
        except DeliveryRejected as exc:
            self._rejected(started, participant, exc)
            return
        except SendWindowMissed:  # the send rate would have started it after its window: nothing reached Twilio
            event = self._event(
                started,
                "nudge_expired",
                purpose=started.purpose.value,
                valid_until=started.valid_until.isoformat() if started.valid_until else None,
                attempts=started.attempts,
                reason="not_sent_within_its_window",
                paced=True,
            )
            self._done(started, OutboxState.EXPIRED, events=[event])
            return
        self._done(started, OutboxState.SENT, sent=sent)

    def _state(self, fresh: bool, *, again: bool = False) -> tuple[Participant | None, FlowState | None]:
        """The state a send (or a schedule) is decided on. For an item this run has just saved: the state it
        saved. The save was conditional on the flow's and the participant's versions as loaded, so when it
        committed they were still what the turn was decided on; nothing that changes reachability (an opt-out,
        a pause, a withdrawal, a safety review) can have come in between without failing that save. Asking the
        store again would only read what we wrote. Any other item: the state stored now, read once a flush."""
        if fresh and self.saved is not None:
            participant: Participant | None = self.saved.participant
            flow: FlowState | None = self.saved.flow
        else:
            if self._stored is None or again:
                try:
                    stored = self.outbox.conversation.load_turn(self.participant_id)
                    self._stored = (stored.participant, stored.flow)
                except NotFound:
                    self._stored = (None, None)
            participant, flow = self._stored
        if participant is not None and self.opted_out:
            participant = participant.model_copy(update={"opted_out": True})
        return participant, flow

    def _rejected(self, item: OutboxItem, participant: Participant, exc: DeliveryRejected) -> None:
        event = self._event(item, "delivery_failed", error_code=exc.code)
        self._done(item, OutboxState.FAILED, error_code=exc.code, events=[event])
        if exc.code == DeliveryRejected.OPTED_OUT:
            self.opted_out = True  # the texts after this one are cancelled, not tried
            data = {"error_code": exc.code, "outbox_key": item.key}
            outbox = self.outbox
            set_opted_out(outbox.participants, participant.id, True, outbox.clock, data, known=participant)

    # -- effects ---------------------------------------------------------------------------------

    def _carry_out(self, item: OutboxItem, fresh: bool) -> None:
        effect = _EFFECT.validate_python(item.effect or {})
        if isinstance(effect, ReconcileSchedules):
            # From the newest state: the one this run has just saved (close() checks it still is), else the one
            # stored now, so an older change's reconcile cannot undo a newer one.
            participant, flow = self._state(fresh)
            now = self.outbox.clock.now()
            desired = desired_schedules(participant, flow, now)
            changes = reconcile(self.outbox.scheduler, item.participant_id, desired, effect.names)
            if fresh and self.saved is not None:
                self.reconciled += [change.name for change in changes]
        elif isinstance(effect, AlertResearchers):
            if self.outbox.alerts is None:
                event = self._event(item, "safety_alert_unsent", category=effect.category, reason="no_alert_topic")
                self._done(item, OutboxState.CANCELLED, events=[event])
                return
            self.outbox.alerts.safety_flag(item.participant_id, effect)
            event = self._event(item, "safety_alert_sent", category=effect.category, rule=effect.rule)
            self._done(item, OutboxState.SENT, events=[event])
            return
        self._done(item, OutboxState.SENT)

    # -- closing ---------------------------------------------------------------------------------

    def _done(
        self,
        item: OutboxItem,
        state: OutboxState,
        *,
        sent: SentSms | None = None,
        error_code: int | None = None,
        events: Sequence[ResearchEvent] = (),
    ) -> None:
        now = self.outbox.clock.now()
        updates = [] if item.decision_id is None else [_ledger(item, state, now, sent, error_code, events)]
        self.finished.append(
            FinishedItem(item, state, sent=sent, error_code=error_code, events=events, decision_updates=updates)
        )

    def _event(self, item: OutboxItem, kind: str, **data: object) -> ResearchEvent:
        return ResearchEvent(
            participant_id=item.participant_id,
            kind=kind,
            at=self.outbox.clock.now(),
            data={"outbox_key": item.key, **data},
        )


def _is_alert(item: OutboxItem) -> bool:
    return (item.effect or {}).get("kind") == "alert_researchers"


def _ledger(
    item: OutboxItem,
    state: OutboxState,
    now: datetime,
    sent: SentSms | None,
    error_code: int | None,
    events: Sequence[ResearchEvent],
) -> DecisionUpdate:
    """What finishing a nudge's send tells its decision point: the treatment given, or why none was."""
    changes: dict[str, object] = {"treated": state is OutboxState.SENT}
    if sent is not None:
        changes.update(sent_at=now, twilio_sid=sent.sid, delivery_status=sent.status)
    if state is OutboxState.EXPIRED:
        changes.update(expired=True, cancelled_reason="not_sent_within_its_window")
    elif state is OutboxState.CANCELLED:
        reasons = [e.data.get("reason") for e in events if e.kind == "message_cancelled"]
        changes["cancelled_reason"] = reasons[0] if reasons else "cancelled"
    elif state is OutboxState.FAILED:
        changes.update(delivery_status="failed", delivery_error_code=error_code, cancelled_reason="send_failed")
    return DecisionUpdate(participant_id=item.participant_id, decision_id=item.decision_id or "", changes=changes)
