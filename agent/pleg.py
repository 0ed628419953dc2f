"""Pod lifecycle event generator: relists the runtime and turns differences into events.

A snapshot maps pod UID → {sandbox or container id → state}. Comparing two snapshots is pure; the
relister only lists (two CRI calls for the whole node). Events carry the time the runtime was listed,
so a pod worker whose sync started later (and therefore saw at least that state) can skip them. Issue 3 adds containerd's event stream as a
faster source feeding the same events; the relist stays as the safety net.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from enum import Enum

from cri.client import CRIClient
from cri.gen import api_pb2

from agent import labels

Snapshot = dict[str, dict[str, str]]


class EventType(str, Enum):
    CONTAINER_STARTED = "ContainerStarted"
    CONTAINER_DIED = "ContainerDied"
    CONTAINER_REMOVED = "ContainerRemoved"
    CONTAINER_CHANGED = "ContainerChanged"


@dataclass(frozen=True)
class PodLifecycleEvent:
    uid: str
    type: EventType
    id: str
    observed_at: float = 0.0     # monotonic time the runtime was listed (before the list call)


_CONTAINER_STATES = {api_pb2.CONTAINER_CREATED: "created", api_pb2.CONTAINER_RUNNING: "running",
                     api_pb2.CONTAINER_EXITED: "exited"}
_SANDBOX_STATES = {api_pb2.SANDBOX_READY: "running", api_pb2.SANDBOX_NOTREADY: "exited"}


def _event_for(uid: str, object_id: str, old: str | None, new: str | None,
               observed_at: float) -> PodLifecycleEvent | None:
    if old == new:
        return None
    if new == "running":
        kind = EventType.CONTAINER_STARTED
    elif new == "exited":
        kind = EventType.CONTAINER_DIED
    elif new is None:
        kind = EventType.CONTAINER_REMOVED
    else:
        kind = EventType.CONTAINER_CHANGED
    return PodLifecycleEvent(uid, kind, object_id, observed_at)


def diff_snapshots(old: Snapshot, new: Snapshot, observed_at: float = 0.0) -> list[PodLifecycleEvent]:
    events = []
    for uid in sorted(set(old) | set(new)):
        before, after = old.get(uid, {}), new.get(uid, {})
        for object_id in sorted(set(before) | set(after)):
            event = _event_for(uid, object_id, before.get(object_id), after.get(object_id), observed_at)
            if event is not None:
                events.append(event)
    return events


@dataclass
class Relister:
    runtime: CRIClient
    node_name: str
    snapshot: Snapshot = field(default_factory=dict)
    pod_names: dict[str, tuple[str, str]] = field(default_factory=dict)   # uid → (namespace, name)
    last_relist: float = 0.0

    async def relist(self) -> list[PodLifecycleEvent]:
        started = time.monotonic()
        selector = {labels.NODE_NAME: self.node_name}
        sandboxes = await self.runtime.list_pod_sandbox(api_pb2.PodSandboxFilter(label_selector=selector))
        containers = await self.runtime.list_containers(api_pb2.ContainerFilter(label_selector=selector))
        fresh: Snapshot = {}
        self.pod_names = {s.metadata.uid: (s.metadata.namespace, s.metadata.name) for s in sandboxes}
        for sandbox in sandboxes:
            fresh.setdefault(sandbox.metadata.uid, {})[sandbox.id] = _SANDBOX_STATES.get(sandbox.state, "unknown")
        for container in containers:
            uid = container.labels.get(labels.POD_UID, "")
            fresh.setdefault(uid, {})[container.id] = _CONTAINER_STATES.get(container.state, "unknown")
        events = diff_snapshots(self.snapshot, fresh, started)
        self.snapshot, self.last_relist = fresh, started
        return events

    def pod_uids(self) -> set[str]:
        return set(self.snapshot)

    def uid_of(self, object_id: str) -> str | None:
        """The pod of a sandbox or container id seen by the last relist."""
        return next((uid for uid, objects in self.snapshot.items() if object_id in objects), None)
