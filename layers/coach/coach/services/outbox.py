"""Carry out what turns and nudges saved in the outbox: send SMS, reconcile schedules, mark each done.

Every item was saved in the same transaction as the state that produced it, so here we only finish
work. Each step is conditional on the item's state, so two runners never both send an item; an item
found `sending` (an attempt began, then the runner died) is first looked up at Twilio, so a message
that got through is not sent again. Right before a send the reachability rule is asked again for the
item's purpose, and a nudge or reminder past its validity window is expired, never sent late; Twilio is
given what is left of the window as the message's ValidityPeriod.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from pydantic import TypeAdapter

from coach.domain.decisions import DecisionUpdate
from coach.domain.effects import AlertResearchers, OutboxEffect, ReconcileSchedules
from coach.domain.errors import Conflict, DeliveryRejected, DeliveryUnavailable
from coach.domain.message import ResearchEvent
from coach.domain.outbox import OutboxItem, OutboxKind, OutboxState, callback_params
from coach.domain.participant import Participant
from coach.domain.reachability import unreachable_reasons
from coach.ports import Clock, ConversationStore, ParticipantStore, ResearchAlerts, Scheduler, SentSms, SmsSender
from coach.services.opt_out import set_opted_out
from coach.services.schedules import reconcile_stored, stored_state

_EFFECT: TypeAdapter[OutboxEffect] = TypeAdapter(OutboxEffect)
# Twilio's clock and ours differ a little; look a bit before the attempt for what it may have sent.
_CLOCK_SKEW = timedelta(minutes=2)


@dataclass
class OutboxDispatcher:
    participants: ParticipantStore
    conversation: ConversationStore
    sender: SmsSender
    scheduler: Scheduler
    clock: Clock
    alerts: ResearchAlerts | None = None  # None: no alert topic configured (recorded as such)

    def flush(self, participant_id: str, just_saved: Sequence[OutboxItem] = ()) -> None:
        """Finish every open item of the participant: schedule changes, then texts oldest first.

        `just_saved` names items this runner has just written: the index that finds open items may lag a
        moment behind a write. Raises DeliveryUnavailable (or a scheduler error) for the caller to retry.
        """
        keys = {item.key: item for item in [*self.conversation.open_outbox(participant_id), *just_saved]}
        alert_failed: DeliveryUnavailable | None = None
        # Schedules first: they follow the stored state whatever happens to the texts, so a Twilio outage
        # cannot keep a reminder from being scheduled or a withdrawn participant's schedule from going.
        for item in sorted(keys.values(), key=lambda i: (i.kind is OutboxKind.SMS, i.created_at, i.key)):
            fresh = self.conversation.get_outbox_item(participant_id, item.key)
            if fresh is None or not fresh.open:
                continue
            try:
                if fresh.kind is OutboxKind.SMS:
                    self._send(fresh)
                else:
                    self._carry_out(fresh)
            except Conflict:
                continue  # another runner moved this item meanwhile: it is theirs to finish
            except DeliveryUnavailable as exc:
                if fresh.kind is OutboxKind.SMS or not _is_alert(fresh):
                    raise
                alert_failed = exc  # the crisis text still goes; the alert is tried again on the retry
        if alert_failed is not None:
            raise alert_failed

    def _send(self, item: OutboxItem) -> None:
        participant, flow = stored_state(self.participants, item.participant_id)
        # Asked again now: the participant may have opted out, been paused or withdrawn since the turn.
        if reasons := unreachable_reasons(participant, flow, item.purpose):
            event = self._event(
                item, "message_cancelled", purpose=item.purpose.value, reason=reasons[0], reasons=list(reasons)
            )
            self._finish(item, OutboxState.CANCELLED, events=[event])
            return
        assert participant is not None
        assert item.body is not None
        to = participant.phone_number  # the number now: a researcher may have corrected it
        pid = item.participant_id

        def claimed(sid: str) -> bool:  # owned by another outbox item of the participant
            return sid != item.reported_sid and self.conversation.sid_claimed(pid, sid)

        if item.state is OutboxState.SENDING and item.attempted_at is not None:
            # An attempt began and its runner died: did it get through? A callback naming this item says so;
            # else a message Twilio created since then, with this body, that no other item owns.
            if item.reported_sid is not None:
                self._finish(item, OutboxState.SENT, sent=SentSms(item.reported_sid, "queued", to, item.body))
                return
            earlier = self.sender.find_sent(to, item.body, item.attempted_at - _CLOCK_SKEW, claimed=claimed)
            if earlier is not None:
                self._finish(item, OutboxState.SENT, sent=earlier)
                return
        now = self.clock.now()
        if item.valid_until is not None and now >= item.valid_until:
            event = self._event(
                item,
                "nudge_expired",
                purpose=item.purpose.value,
                valid_until=item.valid_until.isoformat(),
                attempts=item.attempts,
                reason="not_sent_within_its_window",
            )
            self._finish(item, OutboxState.EXPIRED, events=[event])
            return
        started = self.conversation.begin_attempt(item, now)
        validity = None if item.valid_until is None else math.ceil((item.valid_until - now).total_seconds())
        try:
            sent = self.sender.send(
                to,
                item.body,
                validity_seconds=validity,
                callback_params=callback_params(pid, item.key),
                claimed=claimed,
            )
        except DeliveryRejected as exc:
            self._rejected(started, participant, exc)
            return
        self._finish(started, OutboxState.SENT, sent=sent)

    def _rejected(self, item: OutboxItem, participant: Participant, exc: DeliveryRejected) -> None:
        event = self._event(item, "delivery_failed", error_code=exc.code)
        self._finish(item, OutboxState.FAILED, error_code=exc.code, events=[event])
        if exc.code == DeliveryRejected.OPTED_OUT:
            data = {"error_code": exc.code, "outbox_key": item.key}
            set_opted_out(self.participants, participant.id, True, self.clock, data, known=participant)

    def _carry_out(self, item: OutboxItem) -> None:
        effect = _EFFECT.validate_python(item.effect or {})
        if isinstance(effect, ReconcileSchedules):
            # From the state stored now, not the one that wrote the item: a newer turn's state wins.
            reconcile_stored(self.participants, self.scheduler, item.participant_id, self.clock.now(), effect.names)
        elif isinstance(effect, AlertResearchers):
            if self.alerts is None:
                event = self._event(item, "safety_alert_unsent", category=effect.category, reason="no_alert_topic")
                self._finish(item, OutboxState.CANCELLED, events=[event])
                return
            self.alerts.safety_flag(item.participant_id, effect)
            event = self._event(item, "safety_alert_sent", category=effect.category, rule=effect.rule)
            self._finish(item, OutboxState.SENT, events=[event])
            return
        self._finish(item, OutboxState.SENT)

    def _finish(
        self,
        item: OutboxItem,
        state: OutboxState,
        *,
        sent: SentSms | None = None,
        error_code: int | None = None,
        events: Sequence[ResearchEvent] = (),
    ) -> None:
        now = self.clock.now()
        updates = [] if item.decision_id is None else [_ledger(item, state, now, sent, error_code, events)]
        self.conversation.finish_outbox_item(
            item, state, now, sent=sent, error_code=error_code, events=events, decision_updates=updates
        )

    def _event(self, item: OutboxItem, kind: str, **data: object) -> ResearchEvent:
        return ResearchEvent(
            participant_id=item.participant_id, kind=kind, at=self.clock.now(), data={"outbox_key": item.key, **data}
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
