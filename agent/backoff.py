"""Per-key exponential backoff (kubelet's flowcontrol.Backoff): 10 s doubling to 5 min by default."""
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
