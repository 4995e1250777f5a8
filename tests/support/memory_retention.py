"""In-memory retention and archive (tests, `make chat`), over an InMemoryParticipantStore's dictionaries, with
the DynamoDB and S3 adapters' behaviour: the same items expire, the same ones stay."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from coach.domain.message import Direction, Message, ResearchEvent
from coach.domain.retention import ArchiveKind, ExpiredItems, RetentionPass
from tests.support.memory import InMemoryParticipantStore


def _message_sk(message: Message) -> str:
    return f"MSG#{message.message_id}"


def _event_sk(event: ResearchEvent) -> str:
    # The list holds each event as one object for as long as it is stored: its identity names it.
    return f"EVT#{event.at.isoformat()}#{event.kind}#{id(event):x}"


@dataclass
class InMemoryRetentionStore:
    """Implements coach.ports.RetentionStore."""

    store: InMemoryParticipantStore
    state: RetentionPass = field(default_factory=RetentionPass)

    def expired_items(self, participant_id: str, before: datetime) -> ExpiredItems:
        store, pid = self.store, participant_id
        with store._lock:
            messages = [
                m
                for m in store.messages.get(pid, {}).values()
                if m.at < before and not (m.direction is Direction.INBOUND and m.turn is None)
            ]
            events = [e for e in store.events.get(pid, []) if e.at < before]
            outbox = [o for o in store.outbox.get(pid, {}).values() if not o.open and o.created_at < before]
            gone = {m.message_id for m in messages}
            pointers = [f"MSGID#{sid}" for (owner, sid), mid in store.sids.items() if owner == pid and mid in gone]
            return ExpiredItems(
                records={
                    ArchiveKind.MESSAGES: [{**m.model_dump(mode="json"), "SK": _message_sk(m)} for m in messages],
                    ArchiveKind.EVENTS: [{**e.model_dump(mode="json"), "SK": _event_sk(e)} for e in events],
                },
                keys=[
                    *(_message_sk(m) for m in messages),
                    *(_event_sk(e) for e in events),
                    *(f"OUT#{o.key}" for o in outbox),
                    *pointers,
                ],
            )

    def remove_items(self, participant_id: str, keys: Sequence[str]) -> None:
        store, pid, chosen = self.store, participant_id, set(keys)
        with store._lock:
            if pid in store.messages:
                store.messages[pid] = {k: m for k, m in store.messages[pid].items() if _message_sk(m) not in chosen}
            if pid in store.events:
                store.events[pid] = [e for e in store.events[pid] if _event_sk(e) not in chosen]
            if pid in store.outbox:
                store.outbox[pid] = {k: o for k, o in store.outbox[pid].items() if f"OUT#{k}" not in chosen}
            store.sids = {
                (owner, sid): mid
                for (owner, sid), mid in store.sids.items()
                if owner != pid or f"MSGID#{sid}" not in chosen
            }

    def retention_pass(self) -> RetentionPass:
        return self.state

    def save_retention_pass(self, state: RetentionPass) -> None:
        self.state = state

    def unfinished_deletions(self, limit: int) -> list[str]:
        with self.store._lock:
            return sorted(self.store.deletions)[:limit]

    def repair_index(self) -> int:
        return 0  # the in-memory store has only ever had one index


class InMemoryParticipantArchive:
    """Implements coach.ports.ParticipantArchive: files by `<participant>/<kind>/<name>`, each as JSON lines
    would read back."""

    def __init__(self) -> None:
        self.files: dict[str, list[dict[str, Any]]] = {}
        self._lock = threading.Lock()

    def put(self, participant_id: str, kind: ArchiveKind, name: str, records: Sequence[Mapping[str, Any]]) -> None:
        with self._lock:
            self.files[f"{participant_id}/{kind.value}/{name}"] = [json.loads(json.dumps(r)) for r in records]

    def records(self, participant_id: str, kind: ArchiveKind) -> Iterator[dict[str, Any]]:
        with self._lock:
            prefix = f"{participant_id}/{kind.value}/"
            files = [self.files[k] for k in sorted(self.files) if k.startswith(prefix)]
        seen: set[str] = set()
        for records in files:
            for record in records:
                if record["SK"] not in seen:
                    seen.add(record["SK"])
                    yield record

    def erase(self, participant_id: str, time_left: Callable[[], float] | None = None) -> bool:
        with self._lock:
            for name in [k for k in self.files if k.startswith(f"{participant_id}/")]:
                del self.files[name]
        return True

    def of(self, participant_id: str) -> list[str]:
        """The participant's file names."""
        with self._lock:
            return sorted(k for k in self.files if k.startswith(f"{participant_id}/"))
