"""Carrying a participant's deletion on (coach.domain.deletion): the table's items in batches, the audit trail's
personal values, the archive, then the marker. The researchers' DELETE runs it after its first step; the
retention job runs it for deletions nobody finished. Every step may be repeated, by either, at any time."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from coach.domain.audit import AuditEntry
from coach.domain.deletion import Deletion
from coach.ports import AuditLog, ParticipantArchive, ParticipantStore

TimeLeft = Callable[[], float]  # seconds this invocation may still spend


def within(
    seconds: float, time_left: TimeLeft | None = None, monotonic: Callable[[], float] = time.monotonic
) -> TimeLeft:
    """A budget of `seconds` from now, never past what `time_left` (the invocation's own) allows."""
    ends = monotonic() + seconds

    def left() -> float:
        own = ends - monotonic()
        return own if time_left is None else min(own, time_left())

    return left


@dataclass
class ParticipantDeletion:
    store: ParticipantStore
    audit: AuditLog | None = None
    archive: ParticipantArchive | None = None

    def run(
        self, participant_id: str, *, tombstone: Sequence[AuditEntry] = (), time_left: TimeLeft | None = None
    ) -> Deletion:
        """One step: the marking (with `tombstone`) when not done yet, then as much of the rest as the time
        allows. NotFound when there is neither a participant nor a deletion under way."""
        progress = self.store.delete_participant(participant_id, audit=tombstone, time_left=time_left)
        if self.audit is not None:
            # Every step, not only the first: a step that crashed after the marking left them in place.
            self.audit.erase_personal_data(participant_id)
        if progress.items_left:
            return progress
        if self.archive is not None and not self.archive.erase(participant_id, time_left):
            return progress.model_copy(update={"archive_left": True})
        self.store.finish_deletion(participant_id)  # False: a step running beside this one finished first
        return progress.model_copy(update={"done": True})
