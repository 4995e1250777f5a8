"""The retention job (coach.domain.retention), run every hour by its schedule, each run within its time:

1. profiles an earlier version indexed under one key for everyone get their status's key (once, after an
   upgrade; `python -m infra.migrate_participant_index` does it at once);
2. deletions nobody finished are carried on (a DELETE that answered 202 and was not repeated);
3. with RetentionDays > 0, once a day a pass over every participant archives their messages and events older
   than the cutoff (then removes them, and old outbox items, from the table). A pass that runs out of time
   stops after a page and the next run carries on from there, with the same cutoff.

Archive first, then remove: a run that stops in between leaves an item in both places, which the archive and
the export each read once. A participant deleted while their items were being archived leaves no file behind:
after writing, the job looks again, and erases what it wrote for someone who is gone.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from coach.domain.errors import InvalidPageToken, NotFound
from coach.domain.retention import ExpiredItems, RetentionPass, RetentionRun
from coach.ports import Clock, ParticipantArchive, ParticipantStore, RetentionStore
from coach.services.deletion import ParticipantDeletion, TimeLeft

PAGE = 25  # participants between two checks of the time left
PAGE_SECONDS = 60.0  # what a page may take at most: a run stops before a page (or a deletion) it might not finish
PASS_EVERY = timedelta(hours=23)  # a pass a day, whatever minute of the hour the runs start at
DELETIONS_PER_RUN = 100

EventSink = Callable[[str, dict[str, object]], None]


@dataclass
class RetentionService:
    participants: ParticipantStore
    store: RetentionStore
    archive: ParticipantArchive | None  # None: no bucket, so nothing is archived (nor removed)
    deletion: ParticipantDeletion
    clock: Clock
    days: int = 0  # RetentionDays: 0 keeps everything
    on_event: EventSink = field(default=lambda kind, data: None)
    page: int = PAGE

    def run(self, time_left: TimeLeft) -> RetentionRun:
        report = RetentionRun(index_repaired=self.store.repair_index())
        if report.index_repaired:
            self.on_event("participant_index_repaired", {"moved": report.index_repaired})
        self._finish_deletions(report, time_left)
        if self.days <= 0:
            report.skipped = "retention_off"  # RetentionDays 0: everything is kept
        elif self.archive is None:
            report.skipped = "no_archive"  # nothing leaves the table that the export could not read back
        else:
            self._archive_pass(self.archive, report, time_left)
        self.on_event("retention_ran", report.model_dump())
        return report

    # -- deletions left unfinished --------------------------------------------------------------

    def _finish_deletions(self, report: RetentionRun, time_left: TimeLeft) -> None:
        pending = self.store.unfinished_deletions(DELETIONS_PER_RUN)
        for n, participant_id in enumerate(pending):
            if time_left() <= PAGE_SECONDS:
                report.deletions_left += len(pending) - n
                self.on_event("deletions_left_for_next_run", {"left": report.deletions_left})
                return
            try:
                # Deletions first, with all the time there is: personal data goes before old data moves.
                done = self.deletion.run(participant_id, time_left=lambda: time_left() - PAGE_SECONDS).done
            except NotFound:  # finished by a DELETE meanwhile
                continue
            report.deletions_finished += int(done)
            report.deletions_left += int(not done)
            if done:
                self.on_event("participant_deletion_finished", {"participant_id": participant_id})

    # -- the daily pass -------------------------------------------------------------------------

    def _archive_pass(self, archive: ParticipantArchive, report: RetentionRun, time_left: TimeLeft) -> None:
        now = self.clock.now()
        state = self.store.retention_pass()
        if state.finished_at is not None or state.cutoff is None:  # no pass under way
            if state.started_at is not None and now - state.started_at < PASS_EVERY:
                report.skipped = "pass_done_today"
                return
            state = RetentionPass(cutoff=now - timedelta(days=self.days), started_at=now)
        cutoff, token = state.cutoff, state.cursor
        assert cutoff is not None
        while True:
            if time_left() <= PAGE_SECONDS:
                self.store.save_retention_pass(state.model_copy(update={"cursor": token}))
                self.on_event("retention_pass_paused", {"participants_checked": report.participants_checked})
                return
            try:
                page = self.participants.list_participants(status=None, limit=self.page, next_token=token)
            except InvalidPageToken:  # a cursor an earlier version wrote: start the pass over
                self.on_event("retention_pass_restarted", {"reason": "cursor_not_understood"})
                token = None
                continue
            for participant in page.items:
                self._archive_participant(archive, participant.id, cutoff, report)
            if not (token := page.next_token):
                break
        self.store.save_retention_pass(state.model_copy(update={"cursor": None, "finished_at": self.clock.now()}))
        report.pass_finished = True

    def _archive_participant(
        self, archive: ParticipantArchive, participant_id: str, cutoff: datetime, report: RetentionRun
    ) -> None:
        report.participants_checked += 1
        expired = self.store.expired_items(participant_id, cutoff)
        if expired.empty:
            return
        for kind, records in expired.records.items():
            if records:
                archive.put(participant_id, kind, _file_name(cutoff, records), records)
        try:
            self.participants.get_participant(participant_id)
        except NotFound:
            # Deleted while we read: its deletion may have erased the archive before our files came.
            archive.erase(participant_id)
            self.on_event("archive_erased_for_deleted", {"participant_id": participant_id})
            return
        self.store.remove_items(participant_id, expired.keys)
        report.items_archived += _archived(expired)
        report.items_removed += len(expired.keys)


def _file_name(cutoff: datetime, records: Sequence[Mapping[str, Any]]) -> str:
    """The cutoff first (files list oldest first), then what the file holds: the same items again replace their
    own file, other items never overwrite it."""
    sort_keys = "\n".join(str(r["SK"]) for r in records)
    return f"{cutoff.astimezone(UTC):%Y%m%dT%H%M%SZ}-{hashlib.sha256(sort_keys.encode()).hexdigest()[:16]}"


def _archived(expired: ExpiredItems) -> int:
    return sum(len(records) for records in expired.records.values())
