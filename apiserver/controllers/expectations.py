"""ReplicaSet expectations (as upstream's ControllerExpectations, by name/uid instead of counts): after
creating or deleting pods, a set waits until its informer has seen those changes before deciding again, so
a cache that lags its own writes never leads to a second round of creations."""
from __future__ import annotations

import time
from dataclasses import dataclass, field

EXPIRY_SECONDS = 30.0  # a lost event must not freeze a set forever (upstream: 5 minutes)


@dataclass
class _Pending:
    creates: set[str] = field(default_factory=set)  # pod names created, not yet seen in the cache
    deletes: set[str] = field(default_factory=set)  # pod uids deleted, not yet seen gone or terminating
    since: float = field(default_factory=time.monotonic)


class Expectations:
    def __init__(self, expiry: float = EXPIRY_SECONDS):
        self._expiry = expiry
        self._pending: dict[str, _Pending] = {}

    def expect_create(self, key: str, name: str) -> None:
        self._pending.setdefault(key, _Pending()).creates.add(name)

    def expect_delete(self, key: str, uid: str) -> None:
        self._pending.setdefault(key, _Pending()).deletes.add(uid)

    def observe(self, key: str, event_type: str, name: str, uid: str, terminating: bool) -> None:
        pending = self._pending.get(key)
        if pending is None:
            return
        if event_type != "DELETED":
            pending.creates.discard(name)
        if event_type == "DELETED" or terminating:
            pending.deletes.discard(uid)
        if not pending.creates and not pending.deletes:
            del self._pending[key]

    def satisfied(self, key: str) -> bool:
        pending = self._pending.get(key)
        if pending is None:
            return True
        if time.monotonic() - pending.since > self._expiry:
            del self._pending[key]
            return True
        return False

    def forget(self, key: str) -> None:
        self._pending.pop(key, None)
