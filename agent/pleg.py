"""Pod lifecycle event generator: relists the runtime and turns differences into events.

A snapshot maps pod UID → {sandbox or container id → state}. Comparing two snapshots is pure; the
relister only lists (two CRI calls for the whole node). Events carry the time the runtime was listed,
so a pod worker whose sync started later (and therefore saw at least that state) can skip them.
containerd's event stream (runtime_events) is the fast source; the relist stays the safety net.
Also here: ExitCache (exits announced before CRI shows them) and LastSync (each pod's last view).
"""
from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import Enum

from cri.client import CRIClient
from cri.errors import CRIError
from cri.gen import api_pb2

from agent import labels
from agent.runtime_state import ContainerPhase, PodRuntimeStatus

Snapshot = dict[str, dict[str, str]]
RESOLVED_MEMORY = 1024


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
        if before == after:
            continue
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
    _resolved: dict[str, str] = field(default_factory=dict)        # object id → uid, between relists
    # What the last relist read from each object's metadata (an object's pod never changes): reading a
    # protobuf field costs more than the rest of a relist, which runs every second.
    _owners: dict[str, str] = field(default_factory=dict)          # container id → uid
    _sandboxes: dict[str, tuple[str, str, str]] = field(default_factory=dict)  # sandbox id → uid, ns, name

    async def relist(self) -> list[PodLifecycleEvent]:
        started = time.monotonic()
        selector = {labels.NODE_NAME: self.node_name}
        sandboxes = await self.runtime.list_pod_sandbox(api_pb2.PodSandboxFilter(label_selector=selector))
        containers = await self.runtime.list_containers(api_pb2.ContainerFilter(label_selector=selector))
        fresh: Snapshot = {}
        known_sandboxes, seen_sandboxes = self._sandboxes, {}
        for sandbox in sandboxes:
            sandbox_id = sandbox.id
            pod = known_sandboxes.get(sandbox_id)
            if pod is None:
                meta = sandbox.metadata
                pod = (meta.uid, meta.namespace, meta.name)
            seen_sandboxes[sandbox_id] = pod
            fresh.setdefault(pod[0], {})[sandbox_id] = _SANDBOX_STATES.get(sandbox.state, "unknown")
        known_owners, owners = self._owners, {}
        for container in containers:
            container_id = container.id
            uid = known_owners.get(container_id)
            if uid is None:
                uid = container.labels.get(labels.POD_UID, "")
            owners[container_id] = uid
            fresh.setdefault(uid, {})[container_id] = _CONTAINER_STATES.get(container.state, "unknown")
        if seen_sandboxes.keys() != known_sandboxes.keys():
            self.pod_names = {uid: (namespace, name) for uid, namespace, name in seen_sandboxes.values()}
        self._sandboxes, self._owners = seen_sandboxes, owners
        events = [] if fresh == self.snapshot else diff_snapshots(self.snapshot, fresh, started)
        self.snapshot, self.last_relist = fresh, started
        self._resolved.clear()
        return events

    def pod_uids(self) -> set[str]:
        return set(self.snapshot)

    def uid_of(self, object_id: str) -> str | None:
        """The pod of a sandbox or container id seen by the last relist (or resolved since)."""
        return next((uid for uid, objects in self.snapshot.items() if object_id in objects),
                    self._resolved.get(object_id))

    async def resolve_uid(self, object_id: str) -> str | None:
        """The pod of a container or sandbox the last relist did not see yet (one that started
        and exited within a relist period), from its CRI labels; None when it is not this node's."""
        known = self.uid_of(object_id)
        if known:
            return known
        try:
            found = (await self.runtime.container_status(object_id)).status.labels
        except CRIError:
            try:
                found = (await self.runtime.pod_sandbox_status(object_id)).status.labels
            except CRIError:
                return None
        if found.get(labels.NODE_NAME) != self.node_name or not found.get(labels.POD_UID):
            return None
        if len(self._resolved) >= RESOLVED_MEMORY:
            self._resolved.clear()
        self._resolved[object_id] = found[labels.POD_UID]
        return found[labels.POD_UID]


EXIT_MEMORY = 60.0


@dataclass(frozen=True)
class AnnouncedExit:
    exit_code: int
    finished_at: int              # ns since the epoch
    oom_killed: bool
    seen_at: float                # monotonic


@dataclass
class ExitCache:
    """Exits containerd announced (TaskExit, TaskOOM) that CRI does not show yet: after TaskExit,
    containerd's CRI keeps answering RUNNING for ≈0.25 s while it deletes the task. Status
    generation may use them at once; actions wait until CRI agrees."""
    exits: dict[str, AnnouncedExit] = field(default_factory=dict)
    ooms: dict[str, float] = field(default_factory=dict)

    def record_exit(self, container_id: str, exit_code: int, exited_at: datetime | None, now: float) -> None:
        finished = int(exited_at.timestamp() * 1e9) if exited_at is not None else int(time.time() * 1e9)
        self.exits[container_id] = AnnouncedExit(exit_code, finished, container_id in self.ooms, now)
        self._expire(now)

    def record_oom(self, container_id: str, now: float) -> None:
        self.ooms[container_id] = now
        if container_id in self.exits:
            self.exits[container_id] = replace(self.exits[container_id], oom_killed=True)

    def settled(self, container_id: str) -> None:
        """CRI shows the exit now: the announcement has done its job."""
        self.exits.pop(container_id, None)
        self.ooms.pop(container_id, None)

    def overlaid(self, status: PodRuntimeStatus) -> PodRuntimeStatus | None:
        """A copy of the pod's runtime status with announced exits applied to containers CRI still
        calls running; None when there is none."""
        stale = [c for c in status.containers if c.phase == ContainerPhase.RUNNING and c.id in self.exits]
        if not stale:
            return None
        result = copy.deepcopy(status)
        for container in result.containers:
            announced = self.exits.get(container.id)
            if container.phase == ContainerPhase.RUNNING and announced is not None:
                container.phase = ContainerPhase.EXITED
                container.exit_code = announced.exit_code
                container.finished_at = announced.finished_at
                container.reason = "OOMKilled" if announced.oom_killed else ""
        return result

    def _expire(self, now: float) -> None:
        for table in (self.exits, self.ooms):
            for container_id in [k for k, v in table.items()
                                 if now - (v.seen_at if isinstance(v, AnnouncedExit) else v) > EXIT_MEMORY]:
                del table[container_id]


@dataclass(frozen=True)
class SyncRecord:
    observed: PodRuntimeStatus
    waiting: dict


@dataclass
class LastSync:
    """Each pod's runtime status and waiting reasons as its last sync saw them: an announced exit
    is reported from this without asking CRI again (kubelet's PLEG cache plays that part)."""
    records: dict[str, SyncRecord] = field(default_factory=dict)

    def remember(self, uid: str, observed: PodRuntimeStatus, waiting: dict) -> None:
        self.records[uid] = SyncRecord(observed, waiting)

    def get(self, uid: str) -> SyncRecord | None:
        return self.records.get(uid)

    def forget(self, uid: str) -> None:
        self.records.pop(uid, None)
