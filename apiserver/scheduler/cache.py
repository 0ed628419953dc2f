"""The scheduler's view of the cluster: NodeInfos kept incrementally from pod and node events.

Pods are "assumed" on a node as soon as the scheduler picks it (before the binding is written), so
the next decision already sees their requests; the informer's event for the bound pod then
confirms the assumption, a failed binding forgets it (upstream's scheduler cache does the same).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from apiserver.scheduler.predicates import Charges, NodeInfo, Obj, counts_on_node


@dataclass
class ClusterCache:
    nodes: dict[str, NodeInfo] = field(default_factory=dict)
    _placed: dict[str, str] = field(default_factory=dict)  # pod uid -> node name it holds resources on
    assumed: dict[str, str] = field(default_factory=dict)  # pod uid -> node name, binding not yet seen
    charges: Charges = field(default_factory=Charges)       # what each pod requests, by uid

    def _info(self, name: str) -> NodeInfo:
        info = self.nodes.get(name)
        if info is None:
            info = self.nodes[name] = NodeInfo(name)
        return info

    def set_node(self, node: Obj) -> None:
        self._info(node["metadata"]["name"]).set_node(node)

    def remove_node(self, name: str) -> None:
        info = self.nodes.get(name)
        if info is None:
            return
        if info.pods:
            info.set_node(None)     # pods still bound to it keep their entry until they go
        else:
            del self.nodes[name]

    def ready_nodes(self) -> list[NodeInfo]:
        return [info for info in self.nodes.values() if info.node is not None]

    def _place(self, pod: Obj, node_name: str) -> None:
        uid = pod["metadata"]["uid"]
        self._forget(uid)
        self._info(node_name).add_pod(pod, self.charges.of(pod))
        self._placed[uid] = node_name

    def _forget(self, uid: str) -> None:
        node_name = self._placed.pop(uid, None)
        if node_name is None:
            return
        info = self.nodes.get(node_name)
        if info is not None:
            info.remove_pod(uid)
            if info.node is None and not info.pods:
                del self.nodes[node_name]

    def update_pod(self, pod: Obj) -> None:
        """A pod as the informer sees it (added or modified)."""
        uid = pod["metadata"]["uid"]
        node_name = (pod.get("spec") or {}).get("nodeName")
        if node_name:
            self.assumed.pop(uid, None)
            if counts_on_node(pod):
                self._place(pod, node_name)
            else:
                self._forget(uid)
        elif uid not in self.assumed:
            self._forget(uid)

    def delete_pod(self, pod: Obj) -> None:
        uid = pod["metadata"]["uid"]
        self.assumed.pop(uid, None)
        self._forget(uid)
        self.charges.forget(uid)

    def assume(self, pod: Obj, node_name: str) -> None:
        self.assumed[pod["metadata"]["uid"]] = node_name
        self._place(pod, node_name)

    def forget_assumed(self, uid: str) -> None:
        if self.assumed.pop(uid, None) is not None:
            self._forget(uid)

    def node_of(self, uid: str) -> str | None:
        return self._placed.get(uid)
