"""What each node may see: the pods bound to it and the Secrets/ConfigMaps those pods refer to.

A slim version of upstream's node authorizer graph. `PodIndex` follows every pod through one
in-process watch (an informer whose cache holds a small `BoundPod` per pod, never the pod), so a
request from a node is answered from memory: no list, no storage read."""
from __future__ import annotations

import asyncio
import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterator

from apiserver.informer import RegistrySource
from apiserver.registry import Registry
from shipmate.informer import DELETED, Informer

log = logging.getLogger(__name__)

Obj = dict[str, Any]
Reference = tuple[str, str]  # ("secrets" | "configmaps" | "serviceaccounts" | "persistentvolumeclaims", name),
                             # in the pod's namespace


def _containers(spec: Obj) -> Iterator[Obj]:
    for key in ("initContainers", "containers", "ephemeralContainers"):
        for container in spec.get(key) or []:
            if isinstance(container, dict):
                yield container


def pod_references(pod: Obj) -> frozenset[Reference]:
    """The Secrets and ConfigMaps a pod uses (volumes, projected sources, env, envFrom, image pull
    secrets), as upstream's VisitPodSecretNames/VisitPodConfigmapNames, and its ServiceAccount (a node may
    request tokens for it: upstream's graph has the serviceAccount → pod edge)."""
    spec = pod.get("spec") or {}
    found: set[Reference] = set()
    if isinstance(spec.get("serviceAccountName"), str) and spec["serviceAccountName"]:
        found.add(("serviceaccounts", spec["serviceAccountName"]))

    def add(kind: str, source: Any, key: str = "name") -> None:
        if isinstance(source, dict) and source.get(key):
            found.add((kind, str(source[key])))

    for secret in spec.get("imagePullSecrets") or []:
        add("secrets", secret)
    for volume in spec.get("volumes") or []:
        if not isinstance(volume, dict):
            continue
        add("secrets", volume.get("secret"), "secretName")
        add("configmaps", volume.get("configMap"))
        add("persistentvolumeclaims", volume.get("persistentVolumeClaim"), "claimName")
        for source in (volume.get("projected") or {}).get("sources") or []:
            if isinstance(source, dict):
                add("secrets", source.get("secret"))
                add("configmaps", source.get("configMap"))
        for plugin in ("azureFile", "cephfs", "cinder", "flexVolume", "iscsi", "rbd", "scaleIO", "storageos",
                       "csi"):
            source = volume.get(plugin)
            if isinstance(source, dict):
                add("secrets", source, "secretName")
                for ref_key in ("secretRef", "nodePublishSecretRef"):
                    add("secrets", source.get(ref_key))
    for container in _containers(spec):
        for env_from in container.get("envFrom") or []:
            if isinstance(env_from, dict):
                add("secrets", env_from.get("secretRef"))
                add("configmaps", env_from.get("configMapRef"))
        for env in container.get("env") or []:
            value_from = env.get("valueFrom") if isinstance(env, dict) else None
            if isinstance(value_from, dict):
                add("secrets", value_from.get("secretKeyRef"))
                add("configmaps", value_from.get("configMapKeyRef"))
    return frozenset(found)


@dataclass(frozen=True)
class BoundPod:
    namespace: str
    name: str
    node_name: str
    references: frozenset[Reference] = frozenset()


@dataclass
class NodeGraph:
    """node name → how many of its pods refer to each (namespace, kind, name)."""
    references: dict[str, Counter] = field(default_factory=dict)

    def add(self, pod: BoundPod) -> None:
        counts = self.references.setdefault(pod.node_name, Counter())
        for kind, name in pod.references:
            counts[(pod.namespace, kind, name)] += 1

    def remove(self, pod: BoundPod) -> None:
        counts = self.references.get(pod.node_name)
        if counts is not None:
            for kind, name in pod.references:
                counts[(pod.namespace, kind, name)] -= 1
                if counts[(pod.namespace, kind, name)] <= 0:
                    del counts[(pod.namespace, kind, name)]
            if not counts:
                del self.references[pod.node_name]

    def refers_to(self, node_name: str, namespace: str, kind: str, name: str) -> bool:
        return (namespace, kind, name) in self.references.get(node_name, ())


def bound_pod(pod: Obj) -> BoundPod:
    """What the index keeps of a pod: its node ("" until bound) and, once bound, what it refers to."""
    meta = pod.get("metadata") or {}
    node_name = (pod.get("spec") or {}).get("nodeName") or ""
    return BoundPod(meta.get("namespace") or "", meta.get("name") or "", node_name,
                    pod_references(pod) if node_name else frozenset())


class PodIndex(Informer[BoundPod]):
    """Keeps a NodeGraph of the bound pods current from one pod watch (relists after compaction)."""

    def __init__(self, pods: Registry):
        super().__init__(RegistrySource(pods), self._on_change, transform=bound_pod)
        self.graph = NodeGraph()
        self._task: asyncio.Task | None = None
        self._change: asyncio.Event | None = None  # set on the next applied event, while someone waits

    def _on_change(self, event_type: str, pod: BoundPod, old: BoundPod | None) -> None:
        if old is not None and old.node_name:
            self.graph.remove(old)
        if event_type != DELETED and pod.node_name:
            self.graph.add(pod)
        if self._change is not None:
            self._change.set()
            self._change = None

    def bound_node(self, namespace: str, name: str) -> str | None:
        bound = self.cache.get(f"{namespace}/{name}")
        return bound.node_name or None if bound is not None else None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self.run(), name="node-authorizer-pod-index")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def wait_for_change(self, timeout: float) -> None:
        """Until the next pod event is applied (or `timeout`): a pod bound a moment ago may not be here yet."""
        self.start()
        if self._change is None:
            self._change = asyncio.Event()
        try:
            await asyncio.wait_for(self._change.wait(), timeout)
        except asyncio.TimeoutError:
            pass

    async def wait_synced(self, timeout: float) -> bool:
        self.start()
        try:
            await asyncio.wait_for(self.synced.wait(), timeout)
        except asyncio.TimeoutError:
            log.warning("node authorizer pod index not synced after %.0fs", timeout)
            return False
        return True
