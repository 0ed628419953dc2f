"""When an unschedulable pod gets its next attempt (kube-scheduler's unschedulable pods + backoff queue).

A failed attempt puts the pod aside: it is tried again after `flush` seconds, or earlier when the
cluster changes in a way that may make room, once its backoff (1 s doubling to 10 s per failed
attempt, upstream's defaults) has passed; a pod moved by a change may be taken sooner, while nothing
else is waiting (`moved`: upstream's SchedulerPopFromBackoffQ, on by default since 1.33). Times are the
caller's monotonic seconds.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

INITIAL_BACKOFF = 1.0
MAX_BACKOFF = 10.0
FLUSH_INTERVAL = 10.0   # upstream keeps pods up to 5 min without a relevant event; we retry sooner
BACKOFF_WINDOW = 1.0    # upstream orders its backoff queue by expiry rounded up to this, then by priority


@dataclass
class _Entry:
    attempts: int
    backoff_until: float
    next_try: float
    changes_seen: int   # the queue's count of cluster changes when the pod failed


@dataclass
class RetryQueue:
    initial: float = INITIAL_BACKOFF
    maximum: float = MAX_BACKOFF
    flush: float = FLUSH_INTERVAL
    _entries: dict[str, _Entry] = field(default_factory=dict)
    # Counted, not applied to every entry: a node update must not cost a walk over every pending pod.
    _changes: int = 0

    def failed(self, uid: str, now: float) -> None:
        attempts = self._entries[uid].attempts + 1 if uid in self._entries else 1
        backoff = min(self.initial * 2 ** (attempts - 1), self.maximum)
        self._entries[uid] = _Entry(attempts, now + backoff, now + self.flush, self._changes)

    def cluster_changed(self) -> None:
        self._changes += 1

    def _next_try(self, entry: _Entry) -> float:
        return min(entry.next_try, entry.backoff_until) if entry.changes_seen < self._changes else entry.next_try

    def moved(self) -> dict[str, int]:
        """The pods a change moved since they failed (upstream's backoff queue), with their backoff window: what
        the scheduler takes, earliest window first, when no pod is ready."""
        return {uid: math.ceil(entry.backoff_until / BACKOFF_WINDOW) for uid, entry in self._entries.items()
                if entry.changes_seen < self._changes}

    def ready(self, uid: str, now: float) -> bool:
        entry = self._entries.get(uid)
        return entry is None or self._next_try(entry) <= now

    def forget(self, uid: str) -> None:
        self._entries.pop(uid, None)

    def next_deadline(self) -> float | None:
        return min((self._next_try(e) for e in self._entries.values()), default=None)
