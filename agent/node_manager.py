"""Registers the Node, keeps its status (conditions from the runtime's health) and renews its Lease.

As kubelet, every status check compares the status it computes with the server's copy of the Node
(read each time), not with what it sent last: a change made on the server — the node lifecycle
controller's `Ready=Unknown` after a missed grace period — is repaired at the next check (10 s),
so a recovered node loses its unreachable taints promptly instead of after the report interval.
The agent reports conditions only (pressure included): the node lifecycle controller turns them into
taints, and NodeRestriction refuses a node changing its own taints, as upstream."""
from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from cri.client import CRIClient, runtime_conditions
from cri.errors import CRIError

from agent.events import NORMAL, EventRecorder, node_reference
from agent.node_info import (NodeFacts, RuntimeHealth, condition_events, lease_object, node_object, node_status,
                             runtime_health)
from agent.node_pressure import PressureTracker, gather_signals
from shipmate.kubeclient import LEASES, NODES, AlreadyExists, Conflict, KubeClient, NotFound
from shipmate.quantity import QuantityError, canonical
from shipmate.timeutil import micro_time, rfc3339

log = logging.getLogger(__name__)

Obj = dict[str, Any]
LEASE_NAMESPACE = "kube-node-lease"
LEASE_RENEW_INTERVAL = 10.0
LEASE_DURATION_SECONDS = 40
STATUS_CHECK_INTERVAL = 10.0
STATUS_REPORT_INTERVAL = 60.0
RETRY_INITIAL, RETRY_MAX = 0.5, 10.0


def canonical_quantities(status: Obj) -> Obj:
    """The status with capacity/allocatable in the canonical form the server stores them in (so a
    comparison with the server's copy sees no difference where there is none)."""
    result = dict(status)
    for key in ("capacity", "allocatable"):
        resources = dict(status.get(key) or {})
        for name, value in resources.items():
            try:
                resources[name] = canonical(value)
            except QuantityError:
                pass
        result[key] = resources
    return result


def status_differs(server: Obj, wanted: Obj) -> bool:
    """Whether the server's copy of the node status differs from `wanted` in a field the agent
    reports (heartbeat times aside; conditions compared by type, fields others own ignored)."""
    def without_heartbeat(condition: Obj) -> Obj:
        return {k: v for k, v in condition.items() if k != "lastHeartbeatTime"}
    current = {c.get("type"): without_heartbeat(c) for c in server.get("conditions") or []}
    for key, value in wanted.items():
        if key == "conditions":
            if any(current.get(c["type"]) != without_heartbeat(c) for c in value):
                return True
        elif server.get(key) != value:
            return True
    return False


@dataclass
class NodeManager:
    client: KubeClient
    runtime: CRIClient
    facts: NodeFacts
    node: Obj = field(default_factory=dict)
    health: RuntimeHealth = RuntimeHealth(False, "container runtime status check may not have completed yet")
    _reported_at: float = 0.0
    _lease: Obj | None = None
    _status_wake: asyncio.Event = field(default_factory=asyncio.Event)
    recorder: EventRecorder | None = None
    pressure_tracker: PressureTracker = field(default_factory=PressureTracker)
    pressure: frozenset[str] = frozenset()
    _image_fs_path: str | None = None

    def _event(self, reason: str, message: str) -> None:
        if self.recorder is not None:
            self.recorder.event(node_reference(self.facts.name), NORMAL, reason, message)

    async def check_pressure(self) -> frozenset[str]:
        """Eviction signals against the hard thresholds → the pressure conditions that hold."""
        if self._image_fs_path is None:
            try:
                filesystems = (await self.runtime.image_fs_info()).image_filesystems
                self._image_fs_path = filesystems[0].fs_id.mountpoint if filesystems else ""
            except CRIError as error:
                log.debug("image filesystem unknown node=%s error=%s", self.facts.name, error)
        signals = await asyncio.to_thread(gather_signals, self.facts.root_dir, self._image_fs_path or None)
        pressure = frozenset(self.pressure_tracker.observe(signals, time.monotonic()))
        if pressure != self.pressure:
            log.info("node pressure changed node=%s pressure=%s", self.facts.name, ",".join(sorted(pressure)) or "none")
        self.pressure = pressure
        return pressure

    async def check_runtime(self) -> RuntimeHealth:
        try:
            response = await self.runtime.status()
        except CRIError as error:
            self.health = runtime_health(None, error.message)
        else:
            conditions = {kind: (c.status, c.reason, c.message)
                          for kind, c in runtime_conditions(response).items()}
            self.health = runtime_health(conditions)
        return self.health

    async def register(self) -> Obj:
        """Creates the Node (or adopts the existing one) and waits until it has a podCIDR."""
        delay = RETRY_INITIAL
        self._event("Starting", "Starting kubelet.")
        while True:
            try:
                await self.check_runtime()
                await self.check_pressure()
                now = rfc3339(datetime.now(timezone.utc))
                try:
                    self.node = await self.client.create(NODES, node_object(self.facts, self.health, now,
                                                                           self.pressure,
                                                                           self.pressure_tracker.thresholds))
                    log.info("node registered node=%s", self.facts.name)
                    for reason in condition_events([], self.node.get("status", {}).get("conditions") or []):
                        self._event(reason, f"Node {self.facts.name} status is now: {reason}")
                except AlreadyExists:
                    self.node = await self.client.get(NODES, self.facts.name)
                    log.info("node already registered node=%s", self.facts.name)
                    await self._merge_labels()
                if self.node.get("spec", {}).get("podCIDR"):
                    await self.report_status(force=True)
                    return self.node
                log.warning("node has no podCIDR yet node=%s retry_in=%.1fs", self.facts.name, delay)
            except asyncio.CancelledError:
                raise
            except Exception as error:  # noqa: BLE001 - keep trying until the server answers
                log.warning("node registration failed node=%s error=%r retry_in=%.1fs", self.facts.name,
                            error, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_MAX)

    async def _merge_labels(self) -> None:
        """The kubelet's labels and the agent's annotations on a Node registered earlier."""
        meta = self.node.get("metadata", {})
        labels, annotations = meta.get("labels") or {}, meta.get("annotations") or {}
        missing = {k: v for k, v in self.facts.labels.items() if labels.get(k) != v}
        missing_annotations = {k: v for k, v in self.facts.annotations.items() if annotations.get(k) != v}
        if missing or missing_annotations:
            self.node = await self.client.patch(NODES, self.facts.name, {"metadata": {
                "labels": missing, "annotations": missing_annotations}})

    def runtime_changed(self) -> None:
        """Ask for an early status check (e.g. a pod sync hit an unavailable runtime)."""
        self._status_wake.set()

    async def report_status(self, force: bool = False) -> None:
        """Patches the status when it differs from the server's copy, or every report interval as a
        heartbeat; `force` (at registration, `self.node` just read) skips the read and always writes."""
        if not force:
            self.node = await self.client.get(NODES, self.facts.name)
        now = rfc3339(datetime.now(timezone.utc))
        server_status = self.node.get("status") or {}
        previous = server_status.get("conditions") or []
        status = canonical_quantities(node_status(self.facts, self.health, previous, now, self.pressure,
                                                  self.pressure_tracker.thresholds))
        changed = status_differs(server_status, status)
        due = time.monotonic() - self._reported_at >= STATUS_REPORT_INTERVAL
        if force or due or changed:
            self.node = await self.client.patch(NODES, self.facts.name, {"status": status}, subresource="status")
            self._reported_at = time.monotonic()
            for reason in condition_events(previous, status["conditions"]):
                self._event(reason, f"Node {self.facts.name} status is now: {reason}")
            if changed:
                ready = next(c for c in status["conditions"] if c["type"] == "Ready")
                log.info("node status updated node=%s ready=%s message=%s", self.facts.name, ready["status"],
                         ready.get("message", ""))

    async def run_status_loop(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self._status_wake.wait(), STATUS_CHECK_INTERVAL)
            except asyncio.TimeoutError:
                pass
            self._status_wake.clear()
            try:
                await self.check_runtime()
                await self.check_pressure()
                await self.report_status()
            except asyncio.CancelledError:
                raise
            except Exception as error:  # noqa: BLE001
                log.warning("node status update failed node=%s error=%r", self.facts.name, error)

    async def renew_lease(self) -> None:
        renew = micro_time(datetime.now(timezone.utc))
        if self._lease is None:
            try:
                self._lease = await self.client.get(LEASES, self.facts.name, LEASE_NAMESPACE)
            except NotFound:
                body = lease_object(self.facts.name, self.node.get("metadata", {}).get("uid", ""), renew,
                                    LEASE_DURATION_SECONDS)
                self._lease = await self.client.create(LEASES, body, LEASE_NAMESPACE)
                return
        lease = dict(self._lease)
        lease["spec"] = dict(lease.get("spec") or {}, holderIdentity=self.facts.name,
                             leaseDurationSeconds=LEASE_DURATION_SECONDS, renewTime=renew)
        try:
            self._lease = await self.client.update(LEASES, lease, LEASE_NAMESPACE)
        except (Conflict, NotFound):
            self._lease = None      # someone else wrote it (or deleted it): read again next time
            raise

    async def run_lease_loop(self) -> None:
        delay = RETRY_INITIAL
        while True:
            try:
                await self.renew_lease()
                delay = RETRY_INITIAL
                await asyncio.sleep(LEASE_RENEW_INTERVAL)
            except asyncio.CancelledError:
                raise
            except Exception as error:  # noqa: BLE001
                log.warning("lease renewal failed node=%s error=%r retry_in=%.1fs", self.facts.name, error, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX)
