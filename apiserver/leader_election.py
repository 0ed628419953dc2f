"""Leader election on a coordination.k8s.io/v1 Lease, shaped after client-go's leaderelection package.

Every server is a candidate; the one holding the Lease runs the control loops (scheduler, controllers,
informers). The decision of one attempt is a pure function (`plan_attempt`) of the stored record, the
local time it was last seen to change and our identity; `LeaderElector` applies it through the API with
optimistic concurrency (the update carries the resourceVersion read), so two candidates never both win.

As upstream, expiry is judged against the *local* monotonic time the record was last observed to change,
not against the stored renewTime: clocks of different servers need not agree. One refinement: a change
seen by a poll happened up to one retry period earlier, so the observation is dated back by the record's
own age (its renewTime against our clock), capped at the retry period. With agreeing clocks the lease
then expires for us when it really expires — a killed leader is replaced lease_duration after its last
renewal, not up to a retry period later — and with a skewed clock the error stays within that cap,
still far beyond the old leader's renew deadline (it stops its loops 10 s after its last renewal, we
take over no sooner than 13 s after it). Candidates also wake exactly at the expiry they computed.
"""
from __future__ import annotations

import asyncio
import datetime
import logging
import socket
import time
import uuid
from dataclasses import dataclass, replace
from typing import Awaitable, Callable

from apiserver import errors
from apiserver.api import API
from apiserver.kinds.base import Obj
from shipmate.timeutil import micro_time, parse_rfc3339

log = logging.getLogger(__name__)

LEASE_NAMESPACE = "kube-system"
CONTROLLER_MANAGER_LEASE = "kube-controller-manager"


@dataclass(frozen=True)
class ElectionConfig:
    """kube-controller-manager's defaults: --leader-elect-lease-duration 15s, --leader-elect-renew-deadline
    10s, --leader-elect-retry-period 2s."""
    namespace: str = LEASE_NAMESPACE
    name: str = CONTROLLER_MANAGER_LEASE
    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0


@dataclass(frozen=True)
class LeaderRecord:
    """The election fields of a Lease spec."""
    holder_identity: str = ""
    lease_duration_seconds: int = 0
    acquire_time: str | None = None
    renew_time: str | None = None
    lease_transitions: int = 0

    @classmethod
    def from_lease(cls, lease: Obj) -> "LeaderRecord":
        spec = lease.get("spec") or {}
        return cls(spec.get("holderIdentity") or "", int(spec.get("leaseDurationSeconds") or 0),
                   spec.get("acquireTime"), spec.get("renewTime"), int(spec.get("leaseTransitions") or 0))

    def to_spec(self) -> Obj:
        spec: Obj = {"holderIdentity": self.holder_identity, "leaseDurationSeconds": self.lease_duration_seconds,
                     "leaseTransitions": self.lease_transitions}
        if self.acquire_time:
            spec["acquireTime"] = self.acquire_time
        if self.renew_time:
            spec["renewTime"] = self.renew_time
        return spec


@dataclass(frozen=True)
class Observation:
    """The last record seen and the local monotonic time it was first seen in that state."""
    record: LeaderRecord
    observed_at: float


@dataclass(frozen=True)
class Attempt:
    """What one try decided: the record to write (None: do not write) and why."""
    write: LeaderRecord | None
    observation: Observation | None
    reason: str


def observed_since(record: LeaderRecord, wall_now: datetime.datetime, monotonic_now: float,
                   max_backdate: float) -> float:
    """The monotonic time to date a newly seen record from: now, minus its renewTime's age up to max_backdate."""
    renewed = parse_rfc3339(record.renew_time)
    age = (wall_now - renewed).total_seconds() if renewed else 0.0
    return monotonic_now - min(max(age, 0.0), max_backdate)


def expires_at(observation: Observation, lease_duration: float) -> float:
    return observation.observed_at + (observation.record.lease_duration_seconds or lease_duration)


def plan_attempt(current: LeaderRecord | None, previous: Observation | None, identity: str,
                 lease_duration: float, wall_now: datetime.datetime, monotonic_now: float,
                 max_backdate: float = 0.0) -> Attempt:
    """One tryAcquireOrRenew decision. `current` is the stored record (None: no Lease yet)."""
    stamp = micro_time(wall_now)
    duration = int(lease_duration)
    if current is None:
        record = LeaderRecord(identity, duration, stamp, stamp, 0)
        return Attempt(record, Observation(record, monotonic_now), "create")
    observation = previous
    if observation is None or observation.record != current:
        observation = Observation(current, observed_since(current, wall_now, monotonic_now, max_backdate))
    held_by_other = current.holder_identity and current.holder_identity != identity
    if held_by_other and monotonic_now < expires_at(observation, lease_duration):
        return Attempt(None, observation, f"held by {current.holder_identity}")
    if current.holder_identity == identity:
        record = replace(current, lease_duration_seconds=duration, renew_time=stamp)
        return Attempt(record, observation, "renew")
    # Free (released) or expired: take it over, counting a transition as upstream does.
    record = LeaderRecord(identity, duration, stamp, stamp, current.lease_transitions + 1)
    return Attempt(record, observation, "acquire")


def released(current: LeaderRecord, wall_now: datetime.datetime) -> LeaderRecord:
    """The record a leader writes when it steps down on shutdown (client-go's ReleaseOnCancel): no
    holder, a 1 s duration, so the next candidate takes over at once."""
    stamp = micro_time(wall_now)
    return LeaderRecord("", 1, stamp, stamp, current.lease_transitions)


def default_identity() -> str:
    """`<hostname>_<uuid>`, as kube-controller-manager names itself."""
    return f"{socket.gethostname()}_{uuid.uuid4()}"


class LeaderElector:
    """Campaign for the Lease; while held, run `lead()` as a task; when renewal fails for renew_deadline
    (or another holder is seen), cancel it and campaign again. Each term calls `lead()` afresh."""

    def __init__(self, api: API, lead: Callable[[], Awaitable[None]], identity: str | None = None,
                 config: ElectionConfig = ElectionConfig(),
                 wall_clock: Callable[[], datetime.datetime] = lambda: datetime.datetime.now(datetime.timezone.utc),
                 monotonic: Callable[[], float] = time.monotonic):
        self.api = api
        self.lead = lead
        self.identity = identity or default_identity()
        self.config = config
        self.registry = api.registry("coordination.k8s.io", "leases")
        self._wall_clock = wall_clock
        self._monotonic = monotonic
        self._observation: Observation | None = None
        self.is_leader = False

    async def run(self) -> None:
        try:
            while True:
                await self._acquire()
                await self._hold()
                await asyncio.sleep(self.config.retry_period)
        finally:
            if self.is_leader:
                self.is_leader = False
                await self._release()

    async def try_acquire_or_renew(self) -> bool:
        """One attempt; True if we hold the Lease afterwards. API errors count as a failed attempt."""
        try:
            return await asyncio.wait_for(self._attempt(), self.config.retry_period * 2)
        except asyncio.TimeoutError:
            log.warning("leader election attempt timed out lease=%s/%s", self.config.namespace, self.config.name)
        except errors.APIError as exc:
            if exc.code != 409:
                log.warning("leader election attempt failed lease=%s/%s error=%s", self.config.namespace,
                            self.config.name, exc)
        except Exception as exc:  # noqa: BLE001 - storage trouble: a failed attempt, retried
            log.warning("leader election attempt failed lease=%s/%s error=%r", self.config.namespace,
                        self.config.name, exc)
        return False

    async def _attempt(self) -> bool:
        namespace, name = self.config.namespace, self.config.name
        try:
            lease = await self.registry.get(namespace, name)
        except errors.APIError as exc:
            if exc.code != 404:
                raise
            lease = None
        current = LeaderRecord.from_lease(lease) if lease else None
        attempt = plan_attempt(current, self._observation, self.identity, self.config.lease_duration,
                               self._wall_clock(), self._monotonic(), self.config.retry_period)
        self._observation = attempt.observation
        if attempt.write is None:
            return False
        body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": name, "namespace": namespace}, "spec": attempt.write.to_spec()}
        if lease is None:
            stored = await self.api.create(self.registry, namespace, body)
        else:
            body["metadata"] = {**lease["metadata"]}  # keeps resourceVersion: a conflicting writer gets 409
            stored, _ = await self.api.update(self.registry, namespace, name, body)
        self._observation = Observation(LeaderRecord.from_lease(stored), self._monotonic())
        if attempt.reason == "acquire" or attempt.reason == "create":
            log.info("acquired lease lease=%s/%s identity=%s transitions=%d", namespace, name, self.identity,
                     attempt.write.lease_transitions)
        return True

    async def _acquire(self) -> None:
        while not await self.try_acquire_or_renew():
            await asyncio.sleep(self._until_next_attempt())
        self.is_leader = True

    def _until_next_attempt(self) -> float:
        """A retry period, or less when the observed lease expires sooner (wake right after it)."""
        if self._observation is None:
            return self.config.retry_period
        remaining = expires_at(self._observation, self.config.lease_duration) - self._monotonic()
        return min(self.config.retry_period, max(remaining + 0.01, 0.01))

    async def _hold(self) -> None:
        """Run the control loops and renew until renewal fails for renew_deadline seconds."""
        leading = asyncio.create_task(self.lead(), name="leading")
        last_renewal = self._monotonic()
        try:
            while not leading.done():
                await asyncio.wait([leading], timeout=self.config.retry_period)
                if leading.done():
                    break
                if await self.try_acquire_or_renew():
                    last_renewal = self._monotonic()
                    continue
                holder = self._observation.record.holder_identity if self._observation else ""
                if holder and holder != self.identity:
                    log.error("leadership lost lease=%s/%s new_holder=%s", self.config.namespace,
                              self.config.name, holder)
                    break
                if self._monotonic() - last_renewal >= self.config.renew_deadline:
                    log.error("leadership lost: no renewal within %.0fs lease=%s/%s", self.config.renew_deadline,
                              self.config.namespace, self.config.name)
                    break
            if leading.done() and not leading.cancelled() and leading.exception():
                log.error("control loops died error=%r; stepping down", leading.exception())
        finally:
            leading.cancel()
            await asyncio.gather(leading, return_exceptions=True)
        self.is_leader = False
        self._observation = None

    async def _release(self) -> None:
        """Best-effort step-down on shutdown so the next candidate need not wait out the lease."""
        try:
            lease = await asyncio.wait_for(self.registry.get(self.config.namespace, self.config.name), 2)
            current = LeaderRecord.from_lease(lease)
            if current.holder_identity != self.identity:
                return
            body = {**lease, "spec": released(current, self._wall_clock()).to_spec()}
            await asyncio.wait_for(self.api.update(self.registry, self.config.namespace, self.config.name, body), 2)
            log.info("released lease lease=%s/%s identity=%s", self.config.namespace, self.config.name,
                     self.identity)
        except Exception as exc:  # noqa: BLE001 - the lease expires on its own
            log.warning("lease release failed lease=%s/%s error=%r", self.config.namespace, self.config.name, exc)
