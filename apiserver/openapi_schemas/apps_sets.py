"""apps/v1 DaemonSet, StatefulSet and ControllerRevision, core/v1 PersistentVolumeClaim."""
from __future__ import annotations

from apiserver.openapi_schemas.common import Definition, kind_fields

_CONDITION = {
    "type": ("string", "Condition type."), "status": ("string", "True, False or Unknown."),
    "reason": ("string", "Machine-readable reason of the last transition."),
    "message": ("string", "Human-readable details."),
    "lastTransitionTime": ("Time", "Last time the status changed."),
}
_SELECTOR = ("meta.LabelSelector", "Pods the controller manages; must match the template's labels. Immutable.")
_MIN_READY = ("integer", "Seconds a new pod must be ready, with no container crashing, to count as available. "
                         "Default 0.")
_HISTORY = ("integer", "Old ControllerRevisions kept for rollbacks. Default 10.")
_COLLISIONS = ("integer", "Hash collisions met while naming ControllerRevisions.")

APPS_SETS: dict[str, Definition] = {
    "apps.DaemonSet": Definition(
        "A DaemonSet runs one copy of a pod on every node that fits its template (node selector, node affinity, "
        "tolerations).",
        kind_fields(("apps.DaemonSetSpec", "Desired state: which pods, from which template, how they are updated."),
                    ("apps.DaemonSetStatus", "Most recently observed state. Read-only."))),
    "apps.DaemonSetSpec": Definition("Desired state of a DaemonSet.", {
        "selector": _SELECTOR,
        "template": ("core.PodTemplateSpec", "The pod every eligible node runs."),
        "updateStrategy": ("apps.DaemonSetUpdateStrategy", "How pods are replaced when the template changes."),
        "minReadySeconds": _MIN_READY,
        "revisionHistoryLimit": _HISTORY,
    }, required=("selector", "template")),
    "apps.DaemonSetUpdateStrategy": Definition("How a DaemonSet replaces pods.", {
        "type": ("string", "RollingUpdate (default) or OnDelete (pods are replaced only when deleted)."),
        "rollingUpdate": ("apps.RollingUpdateDaemonSet", "Parameters of RollingUpdate."),
    }),
    "apps.RollingUpdateDaemonSet": Definition("Limits of a DaemonSet rolling update.", {
        "maxUnavailable": ("IntOrString", "Nodes whose daemon pod may be unavailable during the update (number or "
                                          "percent of the desired nodes). Default 1."),
        "maxSurge": ("IntOrString", "Nodes that may run a new pod beside the old one during the update (number or "
                                    "percent). Default 0; only one of the two may be non-zero."),
    }),
    "apps.DaemonSetStatus": Definition("Observed state of a DaemonSet.", {
        "currentNumberScheduled": ("integer", "Nodes that should run the pod and run at least one."),
        "numberMisscheduled": ("integer", "Nodes running the pod that should not."),
        "desiredNumberScheduled": ("integer", "Nodes that should run the pod."),
        "numberReady": ("integer", "Nodes that should run the pod and run it Ready."),
        "observedGeneration": ("integer", "Generation of the spec the controller last acted on."),
        "updatedNumberScheduled": ("integer", "Nodes running the current template's pod."),
        "numberAvailable": ("integer", "Nodes running the pod available (ready for minReadySeconds)."),
        "numberUnavailable": ("integer", "Nodes that should run the pod and have no available one."),
        "collisionCount": _COLLISIONS,
        "conditions": ("[]apps.DaemonSetCondition", "Observations of the DaemonSet's state."),
    }, required=("currentNumberScheduled", "numberMisscheduled", "desiredNumberScheduled", "numberReady")),
    "apps.DaemonSetCondition": Definition("A condition of a DaemonSet.", _CONDITION, required=("type", "status")),
    "apps.StatefulSet": Definition(
        "A StatefulSet runs pods with stable identities (`<name>-<ordinal>`, hostname, storage from claim "
        "templates), created, updated and removed in order.",
        kind_fields(("apps.StatefulSetSpec", "Desired state: replicas, template, claims, ordering and updates."),
                    ("apps.StatefulSetStatus", "Most recently observed state. Read-only."))),
    "apps.StatefulSetSpec": Definition("Desired state of a StatefulSet.", {
        "replicas": ("integer", "Number of pods wanted. Default 1."),
        "selector": _SELECTOR,
        "template": ("core.PodTemplateSpec", "The pods to run; each gets its ordinal's name, hostname and claims."),
        "volumeClaimTemplates": ("[]core.PersistentVolumeClaim", "Claims every pod gets, named "
                                                                 "`<template>-<set>-<ordinal>`."),
        "serviceName": ("string", "The headless Service giving the pods their DNS names "
                                  "(`<pod>.<serviceName>.<namespace>.svc`)."),
        "podManagementPolicy": ("string", "OrderedReady (default: one pod at a time, in order) or Parallel."),
        "updateStrategy": ("apps.StatefulSetUpdateStrategy", "How pods are replaced when the template changes."),
        "revisionHistoryLimit": _HISTORY,
        "minReadySeconds": _MIN_READY,
        "persistentVolumeClaimRetentionPolicy": ("apps.StatefulSetPersistentVolumeClaimRetentionPolicy",
                                                 "What happens to the claims when the set is deleted or scaled down."),
        "ordinals": ("apps.StatefulSetOrdinals", "The first ordinal. Default 0."),
    }, required=("selector", "template")),
    "apps.StatefulSetUpdateStrategy": Definition("How a StatefulSet replaces pods.", {
        "type": ("string", "RollingUpdate (default) or OnDelete."),
        "rollingUpdate": ("apps.RollingUpdateStatefulSetStrategy", "Parameters of RollingUpdate."),
    }),
    "apps.RollingUpdateStatefulSetStrategy": Definition("Limits of a StatefulSet rolling update.", {
        "partition": ("integer", "Pods with an ordinal below this keep the current revision. Default 0."),
        "maxUnavailable": ("IntOrString", "Pods that may be unavailable during the update (number or percent). "
                                          "Default 1."),
    }),
    "apps.StatefulSetPersistentVolumeClaimRetentionPolicy": Definition("Lifecycle of the claims of a StatefulSet.", {
        "whenDeleted": ("string", "Retain (default) or Delete the claims when the StatefulSet is deleted."),
        "whenScaled": ("string", "Retain (default) or Delete the claims of pods removed by a scale down."),
    }),
    "apps.StatefulSetOrdinals": Definition("Ordinals of a StatefulSet's pods.", {
        "start": ("integer", "The first ordinal. Default 0."),
    }),
    "apps.StatefulSetStatus": Definition("Observed state of a StatefulSet.", {
        "observedGeneration": ("integer", "Generation of the spec the controller last acted on."),
        "replicas": ("integer", "Pods created by the controller."),
        "readyReplicas": ("integer", "Pods with a Ready condition."),
        "currentReplicas": ("integer", "Pods at currentRevision."),
        "updatedReplicas": ("integer", "Pods at updateRevision."),
        "availableReplicas": ("integer", "Pods ready for at least minReadySeconds."),
        "currentRevision": ("string", "The ControllerRevision of the pods before the rolling update."),
        "updateRevision": ("string", "The ControllerRevision of the current template."),
        "collisionCount": _COLLISIONS,
        "conditions": ("[]apps.StatefulSetCondition", "Observations of the StatefulSet's state."),
    }, required=("replicas",)),
    "apps.StatefulSetCondition": Definition("A condition of a StatefulSet.", _CONDITION, required=("type", "status")),
    "apps.ControllerRevision": Definition(
        "An immutable snapshot of a controller's pod template, numbered; `kubectl rollout history|undo` read them.",
        kind_fields(data=("object", "The state of this revision: a patch restoring the owner's template."),
                    revision=("integer", "The number of this revision.")), required=("revision",)),
    "core.PersistentVolumeClaim": Definition(
        "A request for storage by a user; pods use it as a volume once it is bound to a PersistentVolume.",
        kind_fields(("core.PersistentVolumeClaimSpec", "The storage wanted."),
                    ("core.PersistentVolumeClaimStatus", "Current state of the claim. Read-only."))),
    "core.PersistentVolumeClaimSpec": Definition("The storage a claim asks for.", {
        "accessModes": ("[]string", "ReadWriteOnce, ReadOnlyMany, ReadWriteMany or ReadWriteOncePod."),
        "selector": ("meta.LabelSelector", "Labels of the volumes that may be bound."),
        "resources": ("core.VolumeResourceRequirements", "At least `requests.storage`."),
        "volumeName": ("string", "The PersistentVolume bound to the claim."),
        "storageClassName": ("string", "The StorageClass wanted."),
        "volumeMode": ("string", "Filesystem (default) or Block."),
        "dataSource": ("object", "An object to populate the volume from."),
        "dataSourceRef": ("object", "An object to populate the volume from."),
        "volumeAttributesClassName": ("string", "The VolumeAttributesClass wanted."),
    }),
    "core.VolumeResourceRequirements": Definition("Storage a claim asks for.", {
        "limits": ("map[string]Quantity", "The most storage allowed."),
        "requests": ("map[string]Quantity", "The least storage wanted (`storage`)."),
    }),
    "core.PersistentVolumeClaimStatus": Definition("Observed state of a claim.", {
        "phase": ("string", "Pending, Bound or Lost."),
        "accessModes": ("[]string", "The access modes of the bound volume."),
        "capacity": ("map[string]Quantity", "The size of the bound volume."),
        "conditions": ("[]object", "Conditions of the claim."),
    }),
}
