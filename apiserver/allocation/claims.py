"""Allocation claims in the shared store, so several API servers on one etcd never hand out one value twice.

Each allocated value (a ClusterIP, a NodePort, a node podCIDR) is claimed, *before* the object holding it
is written, by creating the key `/shipmate/allocations/<kind>/<value>` — a create is atomic in every
backend, so of two servers claiming one value at once exactly one succeeds (upstream reaches the same end
with IPAddress objects and CAS-updated range bitmaps). The claim names its holder (namespace/name + uid).

A claim outlives its holder only after a crash between claiming and writing, or a lost release. It is
then *stale*: the holder object is gone, has another uid, or no longer holds the value. A stale claim is
taken over with a compare-and-swap, but only once it is older than a grace period, since a fresh claim may
belong to a write still in flight on another server.
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from typing import Awaitable, Callable

from apiserver.storage.interface import KeyExists, KeyNotFound, RevisionMismatch, Storage

log = logging.getLogger(__name__)

PREFIX = "/shipmate/allocations/"
GRACE_SECONDS = 30.0


@dataclass(frozen=True)
class Holder:
    owner: str  # "<namespace>/<name>" or "<name>"
    uid: str
    claimed_at: float = 0.0

    def encode(self) -> bytes:
        return json.dumps({"owner": self.owner, "uid": self.uid, "claimedAt": self.claimed_at}).encode()

    @classmethod
    def decode(cls, value: bytes) -> "Holder":
        try:
            data = json.loads(value)
            return cls(str(data["owner"]), str(data.get("uid") or ""), float(data.get("claimedAt") or 0))
        except (ValueError, KeyError, TypeError):
            return cls("", "", 0.0)  # unreadable: treated as stale once the grace period is over

    def same_as(self, other: "Holder") -> bool:
        return self.owner == other.owner and self.uid == other.uid


class ClaimConflict(Exception):
    """The value is held by another live object."""

    def __init__(self, kind: str, value: str, holder: str):
        super().__init__(f"{kind} {value} is already allocated to {holder}")
        self.kind, self.value, self.holder = kind, value, holder


# Whether the holder object still exists with that uid and still holds the value.
HolderCheck = Callable[[Holder, str], Awaitable[bool]]


def claim_key(kind: str, value: str) -> str:
    return f"{PREFIX}{kind}/{value.replace('/', '_')}"


class Claims:
    """Claims of one kind of value (`serviceips`, `servicenodeports`, `podcidrs`) in `storage`."""

    def __init__(self, storage: Storage, kind: str, holder_is_live: HolderCheck,
                 grace: float = GRACE_SECONDS, clock: Callable[[], float] = time.time):
        self.storage = storage
        self.kind = kind
        self.holder_is_live = holder_is_live
        self.grace = grace
        self.clock = clock

    async def claim(self, value: str, owner: str, uid: str) -> bool:
        """Claim `value` for the holder; True if newly claimed (False: it already was ours).
        ClaimConflict if another live holder has it."""
        mine = Holder(owner, uid, self.clock())
        key = claim_key(self.kind, value)
        for _ in range(8):
            try:
                await self.storage.create(key, mine.encode())
                return True
            except KeyExists:
                pass
            kv = await self.storage.get(key)
            if kv is None:
                continue  # released meanwhile
            holder = Holder.decode(kv.value)
            if holder.same_as(mine):
                return False
            if self.clock() - holder.claimed_at < self.grace or await self.holder_is_live(holder, value):
                raise ClaimConflict(self.kind, value, holder.owner)
            try:
                await self.storage.update(key, mine.encode(), kv.mod_revision)
            except (RevisionMismatch, KeyNotFound):
                continue  # someone else moved first: look again
            log.info("took over a stale allocation claim kind=%s value=%s from=%s to=%s", self.kind, value,
                     holder.owner, owner)
            return True
        raise ClaimConflict(self.kind, value, "a concurrent writer")

    async def release(self, value: str, owner: str, uid: str) -> None:
        """Drop the claim if it is still this holder's (never another's)."""
        key = claim_key(self.kind, value)
        kv = await self.storage.get(key)
        if kv is None or not Holder.decode(kv.value).same_as(Holder(owner, uid)):
            return
        try:
            await self.storage.delete(key, kv.mod_revision)
        except (RevisionMismatch, KeyNotFound):
            pass  # taken over or released meanwhile: no longer ours
