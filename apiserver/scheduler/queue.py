"""When an unschedulable pod gets its next attempt (kube-scheduler's unschedulable pods + backoff queue).

A failed attempt puts the pod aside: it is tried again after `flush` seconds, or earlier when the
cluster changes in a way that may make room, but never before its backoff (1 s doubling to 10 s
per failed attempt, upstream's defaults) has passed. Times are the caller's monotonic seconds.
"""
from __future__ import annotations

from dataclasses import dataclass, field

INITIAL_BACKOFF = 1.0
MAX_BACKOFF = 10.0
FLUSH_INTERVAL = 10.0   # upstream keeps pods up to 5 min without a relevant event; we retry sooner


@dataclass
class _Entry:
    attempts: int
    backoff_until: float
    next_try: float


@dataclass
class RetryQueue:
    initial: float = INITIAL_BACKOFF
    maximum: float = MAX_BACKOFF
    flush: float = FLUSH_INTERVAL
    _entries: dict[str, _Entry] = field(default_factory=dict)

    def failed(self, uid: str, now: float) -> None:
        attempts = self._entries[uid].attempts + 1 if uid in self._entries else 1
        backoff = min(self.initial * 2 ** (attempts - 1), self.maximum)
        self._entries[uid] = _Entry(attempts, now + backoff, now + self.flush)

    def cluster_changed(self) -> None:
        for entry in self._entries.values():
            entry.next_try = min(entry.next_try, entry.backoff_until)

    def ready(self, uid: str, now: float) -> bool:
        entry = self._entries.get(uid)
        return entry is None or entry.next_try <= now

    def forget(self, uid: str) -> None:
        self._entries.pop(uid, None)

    def next_deadline(self) -> float | None:
        return min((e.next_try for e in self._entries.values()), default=None)
