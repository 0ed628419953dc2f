"""apps/v1 Deployment and ReplicaSet, core/v1 ReplicationController."""
from __future__ import annotations

from apiserver.openapi_schemas.common import Definition, kind_fields

_REPLICAS = ("integer", "Number of pods wanted. Default 1.")
_MIN_READY = ("integer", "Seconds a new pod must be ready, with no container crashing, to count as available. "
                         "Default 0.")
_STATUS_COUNTS = {
    "replicas": ("integer", "Pods the controller currently has."),
    "readyReplicas": ("integer", "Pods with a Ready condition."),
    "availableReplicas": ("integer", "Pods ready for at least minReadySeconds."),
    "observedGeneration": ("integer", "Generation of the spec the controller last acted on."),
}
_CONDITION = {
    "type": ("string", "Condition type."), "status": ("string", "True, False or Unknown."),
    "reason": ("string", "Machine-readable reason of the last transition."),
    "message": ("string", "Human-readable details."),
    "lastTransitionTime": ("Time", "Last time the status changed."),
}

APPS: dict[str, Definition] = {
    "apps.Deployment": Definition(
        "A Deployment declares the pods an application runs; it rolls them from one template to the next "
        "through ReplicaSets.",
        kind_fields(("apps.DeploymentSpec", "Desired state: replica count, pod template and rollout strategy."),
                    ("apps.DeploymentStatus", "Most recently observed state of the rollout. Read-only."))),
    "apps.DeploymentSpec": Definition("Desired state of a Deployment.", {
        "replicas": _REPLICAS,
        "selector": ("meta.LabelSelector", "Pods the Deployment manages; must match the template's labels. "
                                           "Immutable in apps/v1."),
        "template": ("core.PodTemplateSpec", "The pods to run. Any change starts a new rollout."),
        "strategy": ("apps.DeploymentStrategy", "How old pods are replaced by new ones."),
        "minReadySeconds": _MIN_READY,
        "revisionHistoryLimit": ("integer", "Old ReplicaSets kept for rollbacks. Default 10."),
        "paused": ("boolean", "Whether rollouts are paused (template changes wait)."),
        "progressDeadlineSeconds": ("integer", "Seconds without progress before the rollout is reported as "
                                               "failed (ProgressDeadlineExceeded). Default 600."),
    }, required=("selector", "template")),
    "apps.DeploymentStrategy": Definition("How a Deployment replaces pods.", {
        "type": ("string", "RollingUpdate (default) or Recreate."),
        "rollingUpdate": ("apps.RollingUpdateDeployment", "Parameters of RollingUpdate."),
    }),
    "apps.RollingUpdateDeployment": Definition("Limits of a rolling update.", {
        "maxSurge": ("IntOrString", "Pods allowed above replicas during the update (number or percent). "
                                    "Default 25%."),
        "maxUnavailable": ("IntOrString", "Pods allowed to be unavailable during the update (number or "
                                          "percent). Default 25%."),
    }),
    "apps.DeploymentStatus": Definition("Observed state of a Deployment.", {
        **_STATUS_COUNTS,
        "updatedReplicas": ("integer", "Pods with the current template."),
        "unavailableReplicas": ("integer", "Pods still needed for the Deployment to be fully available."),
        "collisionCount": ("integer", "Hash collisions met while naming ReplicaSets."),
        "conditions": ("[]apps.DeploymentCondition", "Available and Progressing."),
    }),
    "apps.DeploymentCondition": Definition("A condition of a Deployment.", {
        **_CONDITION, "lastUpdateTime": ("Time", "Last time the condition was updated.")},
        required=("type", "status")),
    "apps.ReplicaSet": Definition(
        "A ReplicaSet keeps a number of identical pods running, creating and deleting pods that match its "
        "selector.",
        kind_fields(("apps.ReplicaSetSpec", "Desired state: how many pods, which pods, and from which template."),
                    ("apps.ReplicaSetStatus", "Most recently observed state. Read-only."))),
    "apps.ReplicaSetSpec": Definition("Desired state of a ReplicaSet.", {
        "replicas": _REPLICAS,
        "minReadySeconds": _MIN_READY,
        "selector": ("meta.LabelSelector", "Pods counted against replicas; must match the template's labels. "
                                           "Immutable in apps/v1."),
        "template": ("core.PodTemplateSpec", "Pods created when there are too few."),
    }, required=("selector",)),
    "apps.ReplicaSetStatus": Definition("Observed state of a ReplicaSet.", {
        **_STATUS_COUNTS,
        "fullyLabeledReplicas": ("integer", "Pods whose labels match the template's."),
        "conditions": ("[]apps.ReplicaSetCondition", "ReplicaFailure when pods cannot be created or deleted."),
    }, required=("replicas",)),
    "apps.ReplicaSetCondition": Definition("A condition of a ReplicaSet.", _CONDITION, required=("type", "status")),
    "core.ReplicationController": Definition(
        "The core/v1 predecessor of ReplicaSet: keeps a number of pods matching an equality selector running.",
        kind_fields(("core.ReplicationControllerSpec", "Desired state of the controller."),
                    ("core.ReplicationControllerStatus", "Most recently observed state. Read-only."))),
    "core.ReplicationControllerSpec": Definition("Desired state of a ReplicationController.", {
        "replicas": _REPLICAS,
        "minReadySeconds": _MIN_READY,
        "selector": ("map[string]string", "Labels of the pods counted; the template's labels when empty."),
        "template": ("core.PodTemplateSpec", "Pods created when there are too few."),
    }),
    "core.ReplicationControllerStatus": Definition("Observed state of a ReplicationController.", {
        **_STATUS_COUNTS,
        "fullyLabeledReplicas": ("integer", "Pods whose labels match the template's."),
        "conditions": ("[]object", "ReplicaFailure when pods cannot be created or deleted."),
    }, required=("replicas",)),
}
