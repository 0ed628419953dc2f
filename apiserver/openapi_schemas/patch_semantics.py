"""How the lists (and a few structs) of the published kinds merge: upstream's patchMergeKey/patchStrategy struct
tags and listType/listMapKeys markers, as the OpenAPI extensions x-kubernetes-patch-merge-key,
x-kubernetes-patch-strategy, x-kubernetes-list-type and x-kubernetes-list-map-keys. kubectl computes client-side
apply three-way merges from them (the same keys as apiserver/patch.py's MERGE_KEYS, which the server merges
strategic patches and managed fields with)."""
from __future__ import annotations

from typing import Any


def _map(merge_key: str, keys: tuple[str, ...], strategy: str = "merge") -> dict[str, Any]:
    return {"x-kubernetes-patch-merge-key": merge_key, "x-kubernetes-patch-strategy": strategy,
            "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": list(keys)}


_CONTAINERS = _map("name", ("name",))
_CONDITIONS = _map("type", ("type",))

# (definition, field) → extensions
PATCH_SEMANTICS: dict[tuple[str, str], dict[str, Any]] = {
    ("meta.ObjectMeta", "finalizers"): {"x-kubernetes-patch-strategy": "merge", "x-kubernetes-list-type": "set"},
    ("meta.ObjectMeta", "ownerReferences"): _map("uid", ("uid",)),
    ("core.PodSpec", "containers"): _CONTAINERS,
    ("core.PodSpec", "initContainers"): _CONTAINERS,
    ("core.PodSpec", "ephemeralContainers"): _CONTAINERS,
    ("core.PodSpec", "volumes"): _map("name", ("name",), "merge,retainKeys"),
    ("core.PodSpec", "imagePullSecrets"): _map("name", ("name",)),
    ("core.PodSpec", "hostAliases"): _map("ip", ("ip",)),
    ("core.PodSpec", "topologySpreadConstraints"): _map("topologyKey", ("topologyKey", "whenUnsatisfiable")),
    ("core.PodSpec", "schedulingGates"): _map("name", ("name",)),
    ("core.PodSpec", "resourceClaims"): _map("name", ("name",), "merge,retainKeys"),
    ("core.PodSpec", "tolerations"): {"x-kubernetes-list-type": "atomic"},
    ("core.PodSpec", "readinessGates"): {"x-kubernetes-list-type": "atomic"},
    ("core.Container", "ports"): _map("containerPort", ("containerPort", "protocol")),
    ("core.Container", "env"): _map("name", ("name",)),
    ("core.Container", "volumeMounts"): _map("mountPath", ("mountPath",)),
    ("core.Container", "volumeDevices"): _map("devicePath", ("devicePath",)),
    ("core.Container", "envFrom"): {"x-kubernetes-list-type": "atomic"},
    ("core.Container", "command"): {"x-kubernetes-list-type": "atomic"},
    ("core.Container", "args"): {"x-kubernetes-list-type": "atomic"},
    ("core.PodStatus", "conditions"): _CONDITIONS,
    ("core.ServiceSpec", "ports"): _map("port", ("port", "protocol")),
    ("core.ServiceSpec", "clusterIPs"): {"x-kubernetes-list-type": "atomic"},
    ("core.ServiceSpec", "externalIPs"): {"x-kubernetes-list-type": "atomic"},
    ("core.ServiceSpec", "ipFamilies"): {"x-kubernetes-list-type": "atomic"},
    ("apps.DeploymentSpec", "strategy"): {"x-kubernetes-patch-strategy": "retainKeys"},
    ("apps.DeploymentStatus", "conditions"): _CONDITIONS,
    ("apps.ReplicaSetStatus", "conditions"): _CONDITIONS,
    ("core.ReplicationControllerStatus", "conditions"): _CONDITIONS,
    ("apps.DaemonSetStatus", "conditions"): _CONDITIONS,
    ("apps.StatefulSetStatus", "conditions"): _CONDITIONS,
    ("batch.JobStatus", "conditions"): {"x-kubernetes-list-type": "atomic"},
    ("core.NodeSelectorTerm", "matchExpressions"): {"x-kubernetes-list-type": "atomic"},
    ("core.NodeSelectorTerm", "matchFields"): {"x-kubernetes-list-type": "atomic"},
    ("core.NodeSelector", "nodeSelectorTerms"): {"x-kubernetes-list-type": "atomic"},
    ("meta.LabelSelector", "matchExpressions"): {"x-kubernetes-list-type": "atomic"},
    ("admissionregistration.ValidatingWebhookConfiguration", "webhooks"): _map("name", ("name",)),
    ("admissionregistration.MutatingWebhookConfiguration", "webhooks"): _map("name", ("name",)),
}

# Structs owned (and replaced) as a whole.
ATOMIC_STRUCTS = frozenset({"meta.LabelSelector"})
