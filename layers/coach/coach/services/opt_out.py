"""Opting a participant out (STOP, or the carrier's 21610) and back in (START), with a research event."""

from __future__ import annotations

from typing import Any

from coach.domain.errors import Conflict, NotFound
from coach.domain.message import ResearchEvent
from coach.domain.participant import Participant
from coach.ports import Clock, ParticipantStore

ATTEMPTS = 5  # lost optimistic-locking races before giving up


def set_opted_out(
    participants: ParticipantStore,
    participant_id: str,
    opted_out: bool,
    clock: Clock,
    data: dict[str, Any],
    known: Participant | None = None,
) -> bool:
    """Set `opted_out` with an `opted_out`/`opted_in` event, version-conditional (a lost race reloads).

    `known` saves a read when the caller has the participant. False when nothing changed (already so, or gone).
    """
    for attempt in range(ATTEMPTS):
        current = known if attempt == 0 and known is not None else _participant(participants, participant_id)
        if current is None or current.opted_out == opted_out:
            return False
        now = clock.now()
        kind = "opted_out" if opted_out else "opted_in"
        event = ResearchEvent(participant_id=participant_id, kind=kind, at=now, data=data)
        try:
            participants.update_participant(
                current.model_copy(update={"opted_out": opted_out, "updated_at": now}), events=[event]
            )
        except NotFound:
            return False
        except Conflict:
            if attempt == ATTEMPTS - 1:
                raise
            continue
        return True
    raise AssertionError("unreachable")  # pragma: no cover


def _participant(participants: ParticipantStore, participant_id: str) -> Participant | None:
    try:
        return participants.get_participant(participant_id)
    except NotFound:
        return None
