"""Per-key exponential backoff (kubelet's flowcontrol.Backoff): 10 s doubling to 5 min by default.

Two ways to use it, as upstream: `failed`/`in_backoff` count from the moment of the failure (image
pulls, sandboxes); `next`/`in_backoff_since` count from an event time such as a container's
finishedAt (container restarts: CrashLoopBackOff). An entry expires when the event comes more than
twice the maximum after the last update (a container that ran 10 minutes starts again at 10 s)."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Hashable


@dataclass
class _Entry:
    delay: float
    last_failure: float


@dataclass
class Backoff:
    initial: float = 10.0
    maximum: float = 300.0
    clock: Callable[[], float] = time.monotonic
    _entries: dict[Hashable, _Entry] = field(default_factory=dict)

    def failed(self, key: Hashable) -> float:
        """Records a failure and returns the delay before the next attempt. A key quiet for twice
        the maximum starts again from the initial delay."""
        now = self.clock()
        entry = self._entries.get(key)
        if entry is None or now - entry.last_failure > 2 * self.maximum:
            entry = _Entry(self.initial, now)
        else:
            entry = _Entry(min(entry.delay * 2, self.maximum), now)
        self._entries[key] = entry
        return entry.delay

    def next(self, key: Hashable, event_time: float) -> float:
        """Records an attempt made for an event at `event_time` (same clock) and returns the window
        the next event of this key will wait (flowcontrol.Backoff.Next)."""
        entry = self._entries.get(key)
        if entry is None or event_time - entry.last_failure > 2 * self.maximum:
            delay = self.initial
        else:
            delay = min(entry.delay * 2, self.maximum)
        self._entries[key] = _Entry(delay, self.clock())
        return delay

    def in_backoff_since(self, key: Hashable, event_time: float) -> bool:
        """Whether an attempt for an event at `event_time` must still wait (IsInBackOffSince)."""
        return self.remaining_since(key, event_time) > 0

    def remaining_since(self, key: Hashable, event_time: float) -> float:
        entry = self._entries.get(key)
        if entry is None or event_time - entry.last_failure > 2 * self.maximum:
            return 0.0
        return max(0.0, event_time + entry.delay - self.clock())

    def remaining(self, key: Hashable) -> float:
        """Seconds left in the key's backoff window (0 when an attempt is allowed)."""
        entry = self._entries.get(key)
        if entry is None:
            return 0.0
        return max(0.0, entry.last_failure + entry.delay - self.clock())

    def current_delay(self, key: Hashable) -> float:
        entry = self._entries.get(key)
        return entry.delay if entry else 0.0

    def in_backoff(self, key: Hashable) -> bool:
        return self.remaining(key) > 0

    def reset(self, key: Hashable) -> None:
        self._entries.pop(key, None)

    def forget_where(self, predicate: Callable[[Hashable], bool]) -> None:
        for key in [k for k in self._entries if predicate(k)]:
            del self._entries[key]
