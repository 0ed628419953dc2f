"""Mirror pods: the API's read-only view of each static pod, kept in step with the manifest.

As kubelet: a mirror pod is the static pod with `kubernetes.io/config.mirror=<config hash>` and an
ownerReference to the Node; one whose hash differs (the file changed) or that is being deleted is
deleted (UID precondition, grace 0) and created again; one whose static pod is gone is deleted.
The plan is pure; the manager applies it level-triggered (on wake-ups and every 2 s).
"""
from __future__ import annotations

import asyncio
import copy
import logging
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from agent.static_pods import CONFIG_HASH, CONFIG_MIRROR, full_name, is_mirror
from shipmate.kubeclient import PODS, AlreadyExists, Conflict, KubeClient, NotFound

log = logging.getLogger(__name__)

Obj = dict[str, Any]
RECONCILE_INTERVAL = 2.0


def pod_hash(pod: Obj) -> str:
    annotations = (pod.get("metadata") or {}).get("annotations") or {}
    return annotations.get(CONFIG_MIRROR) or annotations.get(CONFIG_HASH, "")


def mirror_pod(static: Obj, node_name: str, node_uid: str) -> Obj:
    pod = copy.deepcopy(static)
    meta = pod["metadata"]
    for key in ("uid", "resourceVersion", "creationTimestamp", "generateName"):
        meta.pop(key, None)
    meta["annotations"] = dict(meta.get("annotations") or {}, **{CONFIG_MIRROR: pod_hash(static)})
    meta["ownerReferences"] = [{"apiVersion": "v1", "kind": "Node", "name": node_name, "uid": node_uid,
                               "controller": True}]
    pod.pop("status", None)
    return pod


def mirror_for(static: Obj, api_pods: Iterable[Obj]) -> Obj | None:
    """The API pod carrying a static pod's status: its mirror, when it mirrors this very version."""
    name = full_name(static)
    return next((p for p in api_pods if is_mirror(p) and full_name(p) == name
                 and pod_hash(p) == pod_hash(static) and not p["metadata"].get("deletionTimestamp")), None)


@dataclass(frozen=True)
class MirrorPlan:
    delete: list[Obj]          # mirror pods to delete
    create: list[Obj]          # static pods whose mirror to create


def plan_mirrors(static_pods: Iterable[Obj], mirrors: Iterable[Obj]) -> MirrorPlan:
    by_name = {full_name(m): m for m in mirrors if is_mirror(m)}
    wanted = {full_name(s): s for s in static_pods}
    delete, create = [], []
    for name, static in wanted.items():
        mirror = by_name.get(name)
        if mirror is not None and (mirror["metadata"].get("deletionTimestamp") or pod_hash(mirror) != pod_hash(static)):
            delete.append(mirror)
            mirror = None
        if mirror is None:
            create.append(static)
    delete += [m for name, m in by_name.items() if name not in wanted]
    return MirrorPlan(delete, create)


@dataclass
class MirrorPodManager:
    client: KubeClient
    node_name: str
    node_uid: Callable[[], str]                 # "" until the Node is registered
    static_pods: Callable[[], Iterable[Obj]]
    api_pods: Callable[[], Iterable[Obj]]       # the pod informer's store (this node's pods)
    ready: Callable[[], bool]                   # the informer has listed: absent means absent
    interval: float = RECONCILE_INTERVAL
    _wake: asyncio.Event = field(default_factory=asyncio.Event)

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), self.interval)
            except asyncio.TimeoutError:
                pass
            self._wake.clear()
            if not self.ready() or not self.node_uid():
                continue
            try:
                await self.reconcile()
            except asyncio.CancelledError:
                raise
            except Exception as error:  # noqa: BLE001 - API down: the next round retries
                log.warning("mirror pod sync failed node=%s error=%r retry_in=%.1fs", self.node_name, error,
                            self.interval)

    async def reconcile(self) -> MirrorPlan:
        plan = plan_mirrors(list(self.static_pods()), list(self.api_pods()))
        for mirror in plan.delete:
            meta = mirror["metadata"]
            try:
                await self.client.delete(PODS, meta["name"], meta["namespace"], grace_period_seconds=0,
                                         uid=meta["uid"])
                log.info("mirror pod deleted pod=%s uid=%s", full_name(mirror), meta["uid"])
            except (NotFound, Conflict):
                pass                    # already gone (or replaced): nothing to delete
        for static in plan.create:
            body = mirror_pod(static, self.node_name, self.node_uid())
            try:
                created = await self.client.create(PODS, body, body["metadata"]["namespace"])
                log.info("mirror pod created pod=%s uid=%s static_uid=%s", full_name(created),
                         created["metadata"].get("uid"), static["metadata"]["uid"])
            except AlreadyExists:
                # Our store may lag our own create; a mirror of another version is fixed next round.
                pass
        return plan
